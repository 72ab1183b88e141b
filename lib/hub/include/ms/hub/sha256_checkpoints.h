// SHA-256 checkpoints: the chaining state of a blob's hash at every `interval` bytes.
//
// SHA-256 is a chain over 64-byte blocks, so one stream's hash runs on one core, and on fast
// links that core is the limit: 1.3-2 GB/s with SHA-NI, where loopback carries more. `ms hub
// serve` records the chain's state every interval while a blob is uploaded and sends the states
// with its downloads to clients that ask for them. A client then hashes the intervals on
// several cores: interval k starts from state k and must end in state k+1, and the last one in
// the file's sha256. Each link is checked, so together they prove the file's digest whatever
// sent the states; a wrong state costs a re-fetch, never a wrong file. Other hubs send nothing
// and clients hash in one chain as before.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"
#include "ms/hub/sha256.h"

namespace ms::hub {

/// The response header that carries a blob's checkpoints, sent only to requests that carry
/// kWantSha256CheckpointsHeader: other clients (and proxies with small header buffers, such as
/// nginx's 4 KiB default) never see it.
inline constexpr const char* kSha256CheckpointsHeader = "X-Ms-Sha256-Checkpoints";
inline constexpr const char* kWantSha256CheckpointsHeader = "X-Ms-Want-Sha256-Checkpoints";
/// Intervals are whole multiples of this, so that a client's 1 MiB blocks never straddle two.
inline constexpr std::uint64_t kSha256CheckpointGranule = 1u << 20;

struct MS_API Sha256Checkpoints {
  std::uint64_t interval = 0;       ///< bytes between states: a multiple of 1 MiB
  std::vector<Sha256State> states;  ///< states[i]: after (i + 1) * interval bytes

  /// "<interval> <state> <state> ...", each state as 64 lower-case hex digits.
  std::string to_text() const;
  /// Parses to_text()'s form for a file of `file_size` bytes; nullopt when the text is malformed
  /// or does not fit the size (a client then hashes in one chain).
  static std::optional<Sha256Checkpoints> parse(std::string_view text, std::uint64_t file_size);
};

/// The interval a hub records for a blob of `size` bytes: 64 MiB, doubled until there are at most
/// 16 states (a header of about 1 KiB; 4 hashing threads need no more); 0 (no checkpoints) for
/// blobs under two intervals.
MS_API std::uint64_t sha256_checkpoint_interval(std::uint64_t size);

/// One link of a file's hash chain: bytes [from, to) hashed on from the chain's state at `from`.
/// It holds when all its bytes went in and it ends in the next checkpoint; the last link's
/// digest is then the file's sha256, whatever sent the checkpoints.
struct MS_API Sha256Link {
  std::uint64_t from = 0, to = 0;
  Sha256 hasher;
  std::optional<Sha256State> must_end_in;  ///< the next checkpoint; none for the last link

  bool complete() const { return hasher.bytes_hashed() == to; }
  bool holds() const;
};

/// The links of a file of `size` bytes, cut at each of `checkpoints` (which fit `size`); without
/// checkpoints, one link over the whole file.
MS_API std::vector<Sha256Link> sha256_links(const Sha256Checkpoints* checkpoints,
                                            std::uint64_t size);

/// What a chain of links proves about a file.
struct Sha256ChainResult {
  bool held = false;           ///< every link complete and holding
  std::string digest;          ///< the file's sha256 when held
  std::uint64_t bad_from = 0;  ///< otherwise the bytes of the first link that did not hold
  std::uint64_t bad_to = 0;    ///< (exclusive)
};
/// Checks the links in order; takes the digest of the last one.
MS_API Sha256ChainResult finish_sha256_chain(std::vector<Sha256Link>& links);

/// Hashes a stream of `size` bytes, taking the chaining state at every interval on the way.
class MS_API CheckpointingSha256 {
 public:
  explicit CheckpointingSha256(std::uint64_t size);
  void update(const char* data, std::size_t n);
  std::string hex_digest() { return hasher_.hex_digest(); }
  /// The states taken; empty (interval 0) for small blobs.
  const Sha256Checkpoints& checkpoints() const { return checkpoints_; }

 private:
  Sha256 hasher_;
  std::uint64_t size_;
  std::uint64_t hashed_ = 0;
  Sha256Checkpoints checkpoints_;
};

}  // namespace ms::hub
