// libcurl-backed reader for http:// and https:// resources (private to the io module).
#pragma once

#include <string>
#include <string_view>

#include "ms/io/resource.h"

namespace ms::io::detail {

std::string read_http(std::string_view url, const ReadOptions& options);

}  // namespace ms::io::detail
