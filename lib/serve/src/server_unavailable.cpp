// Stand-in for builds without the HTTP front (MS_WITH_HUB_SERVER=OFF): `ms serve` fails with
// ms::Error(kMissingComponent).
#include "ms/core/error.h"
#include "ms/serve/server.h"

namespace ms::serve {

struct Server::Impl {};

Server::Server(ServeOptions) {
  throw Error(ErrorCode::kMissingComponent, "this ms was built without `ms serve`",
              "install libcpp-httplib-dev, then rebuild with -DMS_WITH_HUB_SERVER=ON");
}
Server::~Server() = default;
void Server::start() {}
int Server::port() const { return 0; }
std::string Server::endpoint() const { return {}; }
const std::string& Server::task() const {
  static const std::string none;
  return none;
}
std::string Server::device() const { return {}; }
std::size_t Server::workers() const { return 0; }
const std::filesystem::path& Server::model_dir() const {
  static const std::filesystem::path none;
  return none;
}
void Server::stop() {}
void block_shutdown_signals() {}
int wait_for_shutdown_signal() { return 0; }
bool serve_available() { return false; }

}  // namespace ms::serve
