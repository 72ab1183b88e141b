#include "ms/hub/sha256_checkpoints.h"

#include <algorithm>

#include "ms/core/encoding.h"
#include "ms/core/text.h"

namespace ms::hub {
namespace {

constexpr std::uint64_t kMinInterval = 64u << 20;
constexpr std::size_t kMaxStates = 16;
// What a client accepts: finer intervals than a hub records are fine, as long as they are whole
// granules, and the header stays bounded.
constexpr std::size_t kClientMaxStates = 1024;

// The words big-endian, as a digest is written.
std::string state_hex(const Sha256State& state) {
  std::string bytes;
  for (std::uint32_t word : state) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((word >> shift) & 0xff);
  }
  return hex_encode(bytes);
}

std::optional<Sha256State> parse_state(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Sha256State state{};
  for (std::size_t i = 0; i < 64; ++i) {
    const char c = hex[i];
    std::uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<std::uint32_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    state[i / 8] = (state[i / 8] << 4) | digit;
  }
  return state;
}

}  // namespace

std::string Sha256Checkpoints::to_text() const {
  std::string text = std::to_string(interval);
  for (const Sha256State& state : states) text += " " + state_hex(state);
  return text;
}

std::optional<Sha256Checkpoints> Sha256Checkpoints::parse(std::string_view text,
                                                          std::uint64_t file_size) {
  std::vector<std::string> fields;
  for (const std::string& field : split(std::string(text), ' ')) {
    if (!field.empty()) fields.push_back(field);
  }
  if (fields.size() < 2 || fields.size() - 1 > kClientMaxStates || fields[0].size() > 19) {
    return std::nullopt;
  }
  Sha256Checkpoints result;
  for (char c : fields[0]) {
    if (c < '0' || c > '9') return std::nullopt;
    result.interval = result.interval * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (result.interval == 0 || result.interval % kSha256CheckpointGranule != 0) return std::nullopt;
  // One state at every whole interval strictly inside the file.
  const std::uint64_t expected = (file_size - 1) / result.interval;
  if (file_size == 0 || fields.size() - 1 != expected) return std::nullopt;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    auto state = parse_state(fields[i]);
    if (!state) return std::nullopt;
    result.states.push_back(*state);
  }
  return result;
}

std::uint64_t sha256_checkpoint_interval(std::uint64_t size) {
  std::uint64_t interval = kMinInterval;
  while (size / interval > kMaxStates) interval *= 2;
  return size >= 2 * interval ? interval : 0;
}

CheckpointingSha256::CheckpointingSha256(std::uint64_t size) : size_(size) {
  checkpoints_.interval = sha256_checkpoint_interval(size);
}

void CheckpointingSha256::update(const char* data, std::size_t n) {
  const std::uint64_t interval = checkpoints_.interval;
  while (n > 0) {
    std::size_t take = n;
    std::uint64_t boundary = 0;
    if (interval != 0) {
      boundary = (hashed_ / interval + 1) * interval;
      if (boundary < size_ && hashed_ + take >= boundary) {
        take = static_cast<std::size_t>(boundary - hashed_);
      } else {
        boundary = 0;
      }
    }
    hasher_.update(data, take);
    hashed_ += take;
    data += take;
    n -= take;
    if (boundary != 0 && hashed_ == boundary)
      checkpoints_.states.push_back(hasher_.chaining_state());
  }
}

bool Sha256Link::holds() const {
  if (!complete()) return false;
  if (!must_end_in) return true;
  return hasher.bytes_hashed() % 64 == 0 && hasher.chaining_state() == *must_end_in;
}

std::vector<Sha256Link> sha256_links(const Sha256Checkpoints* checkpoints, std::uint64_t size) {
  std::vector<Sha256Link> links;
  if (checkpoints == nullptr) {
    links.push_back({0, size, Sha256(), std::nullopt});
    return links;
  }
  const std::size_t count = checkpoints->states.size() + 1;
  links.reserve(count);
  for (std::size_t k = 0; k < count; ++k) {
    const std::uint64_t from = k * checkpoints->interval;  // < size: parse() checked the count
    Sha256Link link;
    link.from = from;
    link.to = from + std::min(checkpoints->interval, size - from);
    if (k > 0) link.hasher = Sha256(checkpoints->states[k - 1], from);
    if (k + 1 < count) link.must_end_in = checkpoints->states[k];
    links.push_back(std::move(link));
  }
  return links;
}

Sha256ChainResult finish_sha256_chain(std::vector<Sha256Link>& links) {
  Sha256ChainResult result;
  for (const Sha256Link& link : links) {
    if (!link.holds()) {
      result.bad_from = link.from;
      result.bad_to = link.to;
      return result;
    }
  }
  result.held = !links.empty();
  if (result.held) result.digest = links.back().hasher.hex_digest();
  return result;
}

}  // namespace ms::hub
