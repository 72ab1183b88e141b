#include "ms/hub/sha256.h"

// OpenSSL 3 marks the SHA256_* functions deprecated in favour of EVP, but EVP cannot hand out or
// take in the chaining state that checkpoint verification needs; both reach the same SHA-NI code.
// lib/hub/CMakeLists.txt defines OPENSSL_SUPPRESS_DEPRECATED for this file.
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "ms/core/encoding.h"
#include "ms/core/error.h"

namespace ms::hub {

struct Sha256::State {
  SHA256_CTX ctx;
  bool finished = false;  // hex_digest() was called: OpenSSL's context is spent
};

namespace {

// A moved-from hasher has no state, and a finished one a spent context: using either is a
// caller's mistake, reported rather than a crash or a digest of nothing.
void check_usable(const void* state, bool finished) {
  MS_CHECK(state != nullptr, ErrorCode::kUsage, "a moved-from Sha256 was used");
  MS_CHECK(!finished, ErrorCode::kUsage, "a Sha256 was used after hex_digest()");
}

}  // namespace

Sha256::Sha256() : state_(std::make_unique<State>()) {
  if (SHA256_Init(&state_->ctx) != 1)
    fail(ErrorCode::kInternal, "OpenSSL: cannot initialise SHA-256");
}

Sha256::Sha256(const Sha256State& state, std::uint64_t bytes_hashed) : Sha256() {
  MS_CHECK(bytes_hashed % 64 == 0, ErrorCode::kInternal,
           "a SHA-256 state can only resume at a 64-byte block boundary, not at byte {}",
           bytes_hashed);
  SHA256_CTX& c = state_->ctx;
  for (std::size_t i = 0; i < state.size(); ++i) c.h[i] = state[i];
  // The message length is kept in bits, split over two 32-bit words.
  const std::uint64_t bits = bytes_hashed * 8;
  c.Nl = static_cast<SHA_LONG>(bits & 0xffffffffu);
  c.Nh = static_cast<SHA_LONG>(bits >> 32);
  c.num = 0;
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
  check_usable(state_.get(), state_ && state_->finished);
  if (size == 0) return;
  if (SHA256_Update(&state_->ctx, data, size) != 1)
    fail(ErrorCode::kInternal, "OpenSSL: SHA-256 update failed");
}

std::string Sha256::hex_digest() {
  check_usable(state_.get(), state_ && state_->finished);
  state_->finished = true;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (SHA256_Final(digest, &state_->ctx) != 1)
    fail(ErrorCode::kInternal, "OpenSSL: SHA-256 final failed");
  return hex_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::uint64_t Sha256::bytes_hashed() const {
  check_usable(state_.get(), false);
  const SHA256_CTX& c = state_->ctx;
  return ((static_cast<std::uint64_t>(c.Nh) << 32) | c.Nl) / 8;
}

Sha256State Sha256::chaining_state() const {
  check_usable(state_.get(), state_ && state_->finished);
  const SHA256_CTX& c = state_->ctx;
  MS_CHECK(c.num == 0, ErrorCode::kInternal,
           "SHA-256 chaining state asked for in the middle of a block (at byte {})",
           bytes_hashed());
  Sha256State state;
  for (std::size_t i = 0; i < state.size(); ++i) state[i] = c.h[i];
  return state;
}

std::string sha256_hex(std::string_view data) {
  Sha256 hasher;
  hasher.update(data);
  return hasher.hex_digest();
}

void Sha256::update_from_file(int fd, std::uint64_t length, const std::filesystem::path& path) {
  std::vector<char> buffer(4 << 20);
  std::uint64_t offset = 0;
  while (offset < length) {
    const ssize_t n =
        ::pread(fd, buffer.data(), std::min<std::uint64_t>(buffer.size(), length - offset),
                static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(ErrorCode::kIo, "{}: read failed while hashing", path.string());
    update(buffer.data(), static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

std::string sha256_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::kNotFound, "{}: cannot open for hashing", path.string());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail(ErrorCode::kIo, "{}: cannot stat for hashing", path.string());
  Sha256 hasher;
  hasher.update_from_file(fd, static_cast<std::uint64_t>(info.st_size), path);
  return hasher.hex_digest();
}

}  // namespace ms::hub
