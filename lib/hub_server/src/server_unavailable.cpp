// Stand-in for builds without the hub server (MS_WITH_HUB_SERVER=OFF or cpp-httplib/SQLite
// missing): every entry point fails with ms::Error(kMissingComponent).
#include "ms/core/error.h"
#include "ms/hub_server/server.h"

namespace ms::hub_server {
namespace {

[[noreturn]] void unavailable() {
  throw Error(ErrorCode::kMissingComponent, "this ms was built without the hub server",
              "install libcpp-httplib-dev and libsqlite3-dev, then rebuild with "
              "-DMS_WITH_HUB_SERVER=ON");
}

}  // namespace

struct Server::Impl {};

FaultSpec parse_fault_spec(const std::string&) { return {}; }
Server::Server(ServerOptions) { unavailable(); }
Server::~Server() = default;
void Server::start() { unavailable(); }
int Server::port() const { return 0; }
std::string Server::endpoint() const { return {}; }
int Server::wait_for_shutdown_signal() { return 0; }
void Server::stop() {}
void block_shutdown_signals() {}
std::string create_token(const std::filesystem::path&, const std::string&) { unavailable(); }
bool hub_exists(const std::filesystem::path&) { return false; }
bool hub_server_available() { return false; }

}  // namespace ms::hub_server
