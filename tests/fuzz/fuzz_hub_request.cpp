// libFuzzer target: raw HTTP requests -> `ms hub serve` (ms::hub_server::Server on 127.0.0.1),
// i.e. everything the hub parses from a client: request lines, headers (Range, Content-Length,
// Authorization, cookies), repo ids and paths in URLs and query strings, and the JSON bodies of
// login, repo creation, commit, tag and LFS batch requests. Each input is one request on its own
// connection. An internal error (500) or a sanitizer report is a finding; 4xx are the documented
// rejections.
//
// The server is started once with user "alice" and a public model alice/demo holding two files,
// so that seeds reach the read and write routes; "@TOKEN@" in an input becomes alice's token.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "ms/hub_server/server.h"

namespace fs = std::filesystem;

namespace {

// The length of the first complete answer in `stream` (framed by its Content-Length), or 0.
std::size_t first_answer_length(const std::string& stream) {
  const std::size_t end = stream.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  std::string head = stream.substr(0, end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::size_t cl = head.find("\r\ncontent-length:");
  if (cl == std::string::npos) return 0;
  const std::size_t length = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
  return stream.size() - end - 4 >= length ? end + 4 + length : 0;
}

// Sends one request on a new connection to 127.0.0.1:port and returns the answer. httplib answers
// one request per connection read (it neither pipelines nor answers a client that half-closed), so
// "Connection: close" goes after the request line and an empty line after the request (completing
// one cut off in its headers); the answer is complete at its Content-Length or when the server
// closes. A request cut off in its body waits for bytes that never come: after a second of
// silence the answer so far (none) is taken.
std::string exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string bytes = request + "\r\n\r\n";
  const std::size_t first_line = bytes.find('\n');
  bytes.insert(first_line + 1, "Connection: close\r\n");
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (e.g. after a 413)
    done += static_cast<std::size_t>(n);
  }
  std::string answer;
  char buffer[65536];
  while (first_answer_length(answer) == 0) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer;
}

struct Hub {
  fs::path root;
  std::string token;
  std::unique_ptr<ms::hub_server::Server> server;
  int port = 0;

  Hub() {
    std::string tmpl = (fs::temp_directory_path() / "ms-fuzz-hub-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    root = tmpl;
    token = ms::hub_server::create_token(root, "alice");
    ms::hub_server::ServerOptions options;
    options.root = root;
    options.threads = 4;
    options.max_json_body = 1 << 20;
    options.max_blob_size = 1 << 20;
    server = std::make_unique<ms::hub_server::Server>(options);
    server->start();
    port = server->port();
    const std::string auth = "Authorization: Bearer " + token + "\r\n";
    auto post = [&](const std::string& path, const std::string& body) {
      const std::string answer =
          exchange(port, "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                             "Content-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body);
      if (answer.compare(0, 12, "HTTP/1.1 200") != 0) {
        std::fprintf(stderr, "fuzz_hub_request: setting up the hub failed: %s\n", answer.c_str());
        std::abort();
      }
    };
    post("/api/v1/models", R"({"Path":"alice","Name":"demo","Visibility":5})");
    post(
        "/api/v1/repos/models/alice/demo/commit/master",
        R"({"commit_message":"seed","actions":[)"
        R"({"action":"create","path":"a.txt","type":"normal","encoding":"base64","content":"aGVsbG8K"},)"
        R"({"action":"create","path":"dir/b.json","type":"normal","encoding":"text","content":"{}"}]})");
  }
  ~Hub() {
    server->stop();
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

Hub& hub() {
  static Hub instance;
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Hub& h = hub();
  std::string request(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = request.find("@TOKEN@"); at != std::string::npos;
       at = request.find("@TOKEN@", at + h.token.size())) {
    request.replace(at, 7, h.token);
  }
  const std::string answer = exchange(h.port, request);
  if (answer.compare(0, 13, "HTTP/1.1 500 ") == 0) {
    std::fprintf(stderr, "fuzz_hub_request: internal error: %s\n", answer.c_str());
    std::abort();
  }
  return 0;
}
