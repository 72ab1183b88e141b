#include "ms/core/process.h"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace ms {

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
  return name.data();
}

bool process_alive(long pid) {
  if (pid <= 0 || static_cast<long>(static_cast<pid_t>(pid)) != pid) return false;
  // Signal 0 checks without sending; EPERM is a live process of another user.
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace ms
