// Parquet's FileMetaData and PageHeader structs from the Thrift compact protocol: the fields the
// reader uses are decoded by their ids in parquet.thrift, every other field is skipped, so files
// from newer writers (with fields added since) read the same.
#include "parquet_metadata.h"

#include "ms/core/error.h"
#include "ms/data/parquet_format.h"

namespace ms::data::parquet {

namespace {

using Reader = ThriftCompactReader;

// Reads the fields of one struct: `field(id, type)` returns false for a field it does not take,
// which is then skipped. A field of the right id but another type is skipped too (a writer's
// bug or a newer revision) rather than misread.
template <typename OnField>
void read_struct(Reader& r, OnField&& field) {
  r.begin_struct();
  std::int16_t id = 0;
  ThriftType type{};
  while (r.next_field(id, type))
    if (!field(id, type)) r.skip(type);
  r.end_struct();
}

bool is_int(ThriftType t) {
  return t == ThriftType::kByte || t == ThriftType::kI16 || t == ThriftType::kI32;
}

// A list of `element_type` elements, each read by `each`; another element type is skipped.
template <typename Each>
bool read_list(Reader& r, ThriftType want, Each&& each) {
  ThriftType element{};
  const std::uint32_t n = r.read_list_header(element);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (element == want || (want == ThriftType::kI32 && is_int(element)))
      each();
    else
      r.skip(element);
  }
  return true;
}

LogicalType read_logical_type(Reader& r) {
  LogicalType lt;
  read_struct(r, [&](std::int16_t id, ThriftType t) {
    if (t != ThriftType::kStruct) return false;
    lt.kind = id;
    read_struct(r, [&](std::int16_t f, ThriftType ft) {
      if (id == kLogicalDecimal && is_int(ft)) {  // DecimalType {1: scale, 2: precision}
        (f == 1 ? lt.scale : lt.precision) = r.read_i32();
        return f == 1 || f == 2;
      }
      if ((id == kLogicalTime || id == kLogicalTimestamp) && f == 1 &&
          (ft == ThriftType::kTrue || ft == ThriftType::kFalse)) {
        lt.adjusted_to_utc = r.read_bool(ft);
        return true;
      }
      if ((id == kLogicalTime || id == kLogicalTimestamp) && f == 2 &&
          ft == ThriftType::kStruct) {  // TimeUnit union
        read_struct(r, [&](std::int16_t u, ThriftType ut) {
          if (ut == ThriftType::kStruct) lt.time_unit = u;
          return false;  // the member is an empty struct: skip it
        });
        return true;
      }
      if (id == kLogicalInteger && f == 1 && is_int(ft)) {  // IntType {1: bitWidth i8, 2: isSigned}
        lt.bit_width = r.read_i32();
        return true;
      }
      if (id == kLogicalInteger && f == 2 &&
          (ft == ThriftType::kTrue || ft == ThriftType::kFalse)) {
        lt.is_signed = r.read_bool(ft);
        return true;
      }
      return false;
    });
    return true;
  });
  return lt;
}

SchemaElement read_schema_element(Reader& r) {
  SchemaElement e;
  bool named = false;
  read_struct(r, [&](std::int16_t id, ThriftType t) {
    switch (id) {
      case 1:
        if (!is_int(t)) return false;
        e.type = r.read_i32();
        return true;
      case 2:
        if (!is_int(t)) return false;
        e.type_length = r.read_i32();
        return true;
      case 3:
        if (!is_int(t)) return false;
        e.repetition = r.read_i32();
        return true;
      case 4:
        if (t != ThriftType::kBinary) return false;
        e.name = std::string(r.read_binary());
        named = true;
        return true;
      case 5:
        if (!is_int(t)) return false;
        e.num_children = r.read_i32();
        return true;
      case 6:
        if (!is_int(t)) return false;
        e.converted = r.read_i32();
        return true;
      case 7:
        if (!is_int(t)) return false;
        e.scale = r.read_i32();
        return true;
      case 8:
        if (!is_int(t)) return false;
        e.precision = r.read_i32();
        return true;
      case 10:
        if (t != ThriftType::kStruct) return false;
        e.logical = read_logical_type(r);
        return true;
      default:
        return false;
    }
  });
  if (!named) r.corrupt("a schema element without a name");
  return e;
}

ColumnMetaData read_column_metadata(Reader& r) {
  ColumnMetaData m;
  read_struct(r, [&](std::int16_t id, ThriftType t) {
    switch (id) {
      case 1:
        if (!is_int(t)) return false;
        m.type = r.read_i32();
        return true;
      case 3:
        if (t != ThriftType::kList) return false;
        return read_list(r, ThriftType::kBinary, [&] { m.path.emplace_back(r.read_binary()); });
      case 4:
        if (!is_int(t)) return false;
        m.codec = r.read_i32();
        return true;
      case 5:
        if (t != ThriftType::kI64 && !is_int(t)) return false;
        m.num_values = r.read_i64();
        return true;
      case 7:
        if (t != ThriftType::kI64 && !is_int(t)) return false;
        m.total_compressed_size = r.read_i64();
        return true;
      case 9:
        if (t != ThriftType::kI64 && !is_int(t)) return false;
        m.data_page_offset = r.read_i64();
        return true;
      case 11:
        if (t != ThriftType::kI64 && !is_int(t)) return false;
        m.dictionary_page_offset = r.read_i64();
        return true;
      default:
        return false;
    }
  });
  return m;
}

RowGroup read_row_group(Reader& r) {
  RowGroup g;
  read_struct(r, [&](std::int16_t id, ThriftType t) {
    if (id == 1 && t == ThriftType::kList) {
      return read_list(r, ThriftType::kStruct, [&] {
        ColumnChunk c;
        read_struct(r, [&](std::int16_t f, ThriftType ft) {
          if (f == 1 && ft == ThriftType::kBinary) {
            c.has_file_path = !r.read_binary().empty();
            return true;
          }
          if (f == 3 && ft == ThriftType::kStruct) {
            c.meta = read_column_metadata(r);
            return true;
          }
          return false;
        });
        g.columns.push_back(std::move(c));
      });
    }
    if (id == 3 && (t == ThriftType::kI64 || is_int(t))) {
      g.num_rows = r.read_i64();
      return true;
    }
    return false;
  });
  return g;
}

}  // namespace

FileMetaData parse_file_metadata(std::string_view bytes, const std::string& source) {
  Reader r(bytes, source);
  FileMetaData m;
  read_struct(r, [&](std::int16_t id, ThriftType t) {
    if (id == 2 && t == ThriftType::kList)
      return read_list(r, ThriftType::kStruct, [&] { m.schema.push_back(read_schema_element(r)); });
    if (id == 3 && (t == ThriftType::kI64 || is_int(t))) {
      m.num_rows = r.read_i64();
      return true;
    }
    if (id == 4 && t == ThriftType::kList)
      return read_list(r, ThriftType::kStruct, [&] { m.row_groups.push_back(read_row_group(r)); });
    if (id == 5 && t == ThriftType::kList) {  // list<KeyValue {1: key, 2: optional value}>
      return read_list(r, ThriftType::kStruct, [&] {
        std::pair<std::string, std::string> kv;
        read_struct(r, [&](std::int16_t f, ThriftType ft) {
          if ((f != 1 && f != 2) || ft != ThriftType::kBinary) return false;
          (f == 1 ? kv.first : kv.second) = r.read_binary();
          return true;
        });
        m.key_value.push_back(std::move(kv));
      });
    }
    return false;
  });
  return m;
}

PageHeader parse_page_header(std::string_view bytes, const std::string& source,
                             std::size_t& header_size) {
  Reader r(bytes, source);
  PageHeader h;
  const auto int_field = [&](ThriftType t, std::int32_t& out) {
    if (!is_int(t)) return false;
    out = r.read_i32();
    return true;
  };
  const auto enum_field = [&](ThriftType t, int& out) {
    if (!is_int(t)) return false;
    out = r.read_i32();
    return true;
  };
  read_struct(r, [&](std::int16_t id, ThriftType t) {
    switch (id) {
      case 1:
        return enum_field(t, h.type);
      case 2:
        return int_field(t, h.uncompressed_size);
      case 3:
        return int_field(t, h.compressed_size);
      case 5:  // DataPageHeader
      case 7:  // DictionaryPageHeader
        if (t != ThriftType::kStruct) return false;
        // A header for another page type (or before the type) is not this page's.
        if (id == 5 ? h.type != kDataPage : h.type != kDictionaryPage) return false;
        h.has_page_header = true;
        read_struct(r, [&](std::int16_t f, ThriftType ft) {
          if (f == 1) return int_field(ft, h.num_values);
          if (f == 2) return enum_field(ft, h.encoding);
          if (id == 5 && f == 3) return enum_field(ft, h.definition_level_encoding);
          if (id == 5 && f == 4) return enum_field(ft, h.repetition_level_encoding);
          return false;
        });
        return true;
      case 8:  // DataPageHeaderV2
        if (t != ThriftType::kStruct || h.type != kDataPageV2) return false;
        h.has_page_header = true;
        read_struct(r, [&](std::int16_t f, ThriftType ft) {
          switch (f) {
            case 1:
              return int_field(ft, h.num_values);
            case 2:
              return int_field(ft, h.num_nulls);
            case 3:
              return int_field(ft, h.num_rows);
            case 4:
              return enum_field(ft, h.encoding);
            case 5:
              return int_field(ft, h.definition_levels_length);
            case 6:
              return int_field(ft, h.repetition_levels_length);
            case 7:
              if (ft != ThriftType::kTrue && ft != ThriftType::kFalse) return false;
              h.is_compressed = r.read_bool(ft);
              return true;
            default:
              return false;
          }
        });
        return true;
      default:
        return false;
    }
  });
  header_size = r.position();
  return h;
}

}  // namespace ms::data::parquet
