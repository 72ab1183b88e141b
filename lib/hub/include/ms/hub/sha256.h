// Streaming SHA-256 through OpenSSL's EVP interface (uses SHA-NI where the CPU has it).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace ms::hub {

/// Incremental SHA-256: update() with chunks, then hex_digest().
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// Lower-case hex of the digest. The hasher must not be updated afterwards.
  std::string hex_digest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// SHA-256 (lower-case hex) of a string.
std::string sha256_hex(std::string_view data);

/// SHA-256 of a file, read in 16 MiB blocks; throws ms::Error naming the path.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace ms::hub
