#include "ms/io/resource.h"

#include <cctype>

#include "http_reader.h"
#include "ms/core/error.h"
#include "ms/core/file.h"

namespace ms::io {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text, std::string_view whole) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      const int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
      const int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        fail(ErrorCode::kUsage, "{}: malformed percent-escape in URL", whole);
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string read_local(std::string_view location, const ReadOptions& options) {
  const std::string path = local_path_of(location);
  std::string data = read_file(path);
  if (options.max_bytes != 0 && data.size() > options.max_bytes) {
    fail(ErrorCode::kIo, "{}: {} bytes is over the limit of {}", path, data.size(),
         options.max_bytes);
  }
  return data;
}

}  // namespace

bool is_url(std::string_view location) {
  const std::size_t colon = location.find("://");
  if (colon == std::string_view::npos || colon == 0) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    const unsigned char c = static_cast<unsigned char>(location[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

std::string scheme_of(std::string_view location) {
  if (!is_url(location)) return "file";
  std::string scheme(location.substr(0, location.find("://")));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme;
}

std::string local_path_of(std::string_view location) {
  if (!is_url(location)) return std::string(location);
  MS_CHECK(scheme_of(location) == "file", ErrorCode::kUsage, "{}: not a file:// URL", location);
  std::string_view rest = location.substr(location.find("://") + 3);
  // file:///abs/path has an empty host; file://localhost/abs/path is accepted too.
  const std::size_t slash = rest.find('/');
  const std::string_view host = rest.substr(0, slash);
  if (!host.empty() && host != "localhost") {
    fail(ErrorCode::kUsage, "{}: file:// URLs with a remote host ('{}') are not supported",
         location, host);
  }
  MS_CHECK(slash != std::string_view::npos, ErrorCode::kUsage, "{}: file:// URL has no path",
           location);
  return percent_decode(rest.substr(slash), location);
}

const Registry<ResourceReader>& url_schemes() {
  static const Registry<ResourceReader> schemes = [] {
    Registry<ResourceReader> r("url_schemes");
    r.add("file", read_local, "local files: plain paths and file:// URLs");
    r.add("http", detail::read_http, "HTTP through libcurl, with connect and stall timeouts");
    r.add("https", detail::read_http, "HTTPS through libcurl (system CA store)");
    return r;
  }();
  return schemes;
}

std::string read_resource(std::string_view location, const ReadOptions& options) {
  MS_CHECK(!location.empty(), ErrorCode::kUsage, "empty path or URL");
  const std::string scheme = scheme_of(location);
  const ResourceReader* reader = url_schemes().find(scheme);
  if (reader == nullptr) {
    throw Error(ErrorCode::kUsage, fmt::format("{}: unsupported URL scheme '{}'", location, scheme),
                "supported: " + join(url_schemes().types(), ", "));
  }
  return (*reader)(location, options);
}

void register_io_components(Registries& registries) { registries.add(url_schemes()); }

}  // namespace ms::io
