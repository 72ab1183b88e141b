// Streaming SHA-256 through OpenSSL (uses SHA-NI where the CPU has it), with access to the
// chaining state so that several threads can check one big file (sha256_checkpoints.h).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms::hub {

/// SHA-256's chaining state: the eight 32-bit words after a whole number of 64-byte blocks.
using Sha256State = std::array<std::uint32_t, 8>;

/// Incremental SHA-256: update() with chunks, then hex_digest(). Using a moved-from hasher, or
/// updating one after hex_digest(), is ms::Error(kUsage).
class MS_API Sha256 {
 public:
  Sha256();
  /// Continues a hash whose first `bytes_hashed` bytes (a multiple of 64) ended in `state`.
  Sha256(const Sha256State& state, std::uint64_t bytes_hashed);
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// Hashes bytes [0, length) of the open file `fd` (`path` names it in errors).
  void update_from_file(int fd, std::uint64_t length, const std::filesystem::path& path);
  /// Lower-case hex of the digest; once only (kUsage after that).
  std::string hex_digest();
  /// Bytes hashed so far, including those a resumed state stands for.
  std::uint64_t bytes_hashed() const;
  /// The chaining state now; needs bytes_hashed() to be a multiple of 64.
  Sha256State chaining_state() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// SHA-256 (lower-case hex) of a string.
MS_API std::string sha256_hex(std::string_view data);

/// SHA-256 of a file, read in 16 MiB blocks; throws ms::Error naming the path.
MS_API std::string sha256_file(const std::filesystem::path& path);

}  // namespace ms::hub
