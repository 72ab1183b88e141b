#include "ms/hub/sha256.h"

#include <openssl/evp.h>

#include <cstdio>
#include <vector>

#include "ms/core/encoding.h"
#include "ms/core/error.h"

namespace ms::hub {

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  if (state_->ctx == nullptr || EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1) {
    fail(ErrorCode::kInternal, "OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() {
  if (state_ && state_->ctx != nullptr) EVP_MD_CTX_free(state_->ctx);
}

Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
  if (size == 0) return;
  if (EVP_DigestUpdate(state_->ctx, data, size) != 1)
    fail(ErrorCode::kInternal, "OpenSSL: SHA-256 update failed");
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(state_->ctx, digest, &length) != 1)
    fail(ErrorCode::kInternal, "OpenSSL: SHA-256 final failed");
  return hex_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string sha256_hex(std::string_view data) {
  Sha256 hasher;
  hasher.update(data);
  return hasher.hex_digest();
}

std::string sha256_file(const std::filesystem::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) fail(ErrorCode::kNotFound, "{}: cannot open for hashing", path.string());
  Sha256 hasher;
  std::vector<char> buffer(16 << 20);
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0)
    hasher.update(buffer.data(), n);
  if (std::ferror(file.get())) fail(ErrorCode::kIo, "{}: read failed while hashing", path.string());
  return hasher.hex_digest();
}

}  // namespace ms::hub
