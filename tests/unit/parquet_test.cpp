// Unit tests of the Parquet reader: the Thrift compact protocol reader, the RLE / bit-packed
// hybrid and DELTA_BINARY_PACKED decoders, a small file pyarrow wrote, and hostile bytes (every
// truncation and every flipped byte of that file is an ms::Error or a table, never a crash).
#include "ms/data/parquet.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "catch.h"
#include "error_capture.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/data/dataset.h"
#include "ms/data/parquet_format.h"

using namespace ms::data;
using ms::data::parquet::ThriftCompactReader;
using ms::data::parquet::ThriftType;

namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (const int x : b) s.push_back(static_cast<char>(x));
  return s;
}

// Generated once with pyarrow 26.0.1 (not at test time):
//   t = pa.table({"id": pa.array([1, None, 3], pa.int64()),
//                 "text": pa.array(["a", "héllo", None]),
//                 "tags": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
//                 "ok": pa.array([True, False, True])})
//   pq.write_table(t, buf, compression="NONE", store_schema=False, write_statistics=False)
// Dictionary-encoded data pages v1, optional columns, a list column.
const std::string kSmallFile = from_hex(
    "504152311504152015204c15041500120000010000000000000003000000000000001500151215122c150615101506"
    "15"
    "061c0000000200000003050103021504151e151e4c1504150012000001000000610600000068c3a96c6c6f15001512"
    "15"
    "122c15061510150615061c0000000200000003030103021504152015204c1504150012000001000000000000000200"
    "00"
    "00000000001500152015202c15081510150615061c00000002000000030203000000034f000103021500150e150e2c"
    "15"
    "061500150615061c000000020000000601051504197c35001806736368656d61150800150425021802696400150c25"
    "02"
    "18047465787425004c1c0000003502180474616773150215064c3c000000350418046c697374150200150425021807"
    "65"
    "6c656d656e74001500250218026f6b001606191c194c26001c15041935000610191802696415001606167416742644"
    "26"
    "08292c15041500150200150015101502003c29061926020400000026001c150c193500061019180474657874150016"
    "06"
    "1672167226b601267c292c15041500150200150015101502003c160e19061926020400000026001c15041935000610"
    "19"
    "380474616773046c69737407656c656d656e741500160816820116820126aa0226ee01292c15041500150200150015"
    "10"
    "1502003c2926060219460202000400000026001c1500192506001918026f6b150016061634163426f002491c150015"
    "00"
    "1502003c290619260006000000169c0316062608169c03002820706172717565742d6370702d6172726f7720766572"
    "73"
    "696f6e2032362e302e31194c1c00001c00001c00001c0000008701000050415231");

}  // namespace

TEST_CASE("thrift compact reader: fields, deltas, lists, bools, unknown fields skipped") {
  const std::string b = bytes({0x15, 0x05,              // field 1 (delta 1), i32: zigzag 5 = -3
                               0x18, 0x02, 'a',  'b',   // field 2, binary "ab"
                               0x39, 0x25, 0x02, 0x04,  // field 5 (delta 3), list of 2 i32: 1, 2
                               0x01, 0x28,        // field 20 (long form: zigzag 40), bool true
                               0x1C, 0x16, 0x02,  // field 21, struct {1: i64 1,
                               0x19, 0x1C, 0x12, 0x00,  //   2: list of 1 struct {1: bool false}
                               0x00,                    // } (the inner struct's stop)
                               0x00});                  // stop
  ThriftCompactReader r(b, "test");
  std::int16_t id = 0;
  ThriftType type{};
  REQUIRE(r.next_field(id, type));
  CHECK(id == 1);
  CHECK(r.read_i32() == -3);
  REQUIRE(r.next_field(id, type));
  CHECK(id == 2);
  CHECK(r.read_binary() == "ab");
  REQUIRE(r.next_field(id, type));
  CHECK(id == 5);
  CHECK(type == ThriftType::kList);
  ThriftType element{};
  REQUIRE(r.read_list_header(element) == 2);
  CHECK(r.read_i32() == 1);
  CHECK(r.read_i32() == 2);
  REQUIRE(r.next_field(id, type));
  CHECK(id == 20);
  CHECK(r.read_bool(type));
  REQUIRE(r.next_field(id, type));
  CHECK(id == 21);
  r.skip(type);  // a field this reader does not know, nested structs and lists inside
  CHECK_FALSE(r.next_field(id, type));
  CHECK(r.position() == b.size());
}

TEST_CASE("thrift compact reader: an empty list without an element type, as fastparquet writes") {
  const std::string b = bytes({0x19, 0x00, 0x00});  // field 1, list: the byte 0 (0 elements)
  ThriftCompactReader r(b, "test");
  std::int16_t id = 0;
  ThriftType type{};
  REQUIRE(r.next_field(id, type));
  ThriftType element{};
  CHECK(r.read_list_header(element) == 0);
  CHECK_FALSE(r.next_field(id, type));
  // With elements, a list still needs a type.
  ThriftCompactReader r2(bytes({0x19, 0x10}), "test");
  REQUIRE(r2.next_field(id, type));
  CHECK(code_of([&] { r2.read_list_header(element); }) == ms::ErrorCode::kIntegrity);
}

TEST_CASE("thrift compact reader: truncated and malformed bytes are kIntegrity") {
  const auto read_all = [](const std::string& b) {
    ThriftCompactReader r(b, "test");
    r.skip(ThriftType::kStruct);
  };
  CHECK(code_of([&] { read_all(bytes({0x18, 0x05, 'a'})); }) == ms::ErrorCode::kIntegrity);
  CHECK(code_of([&] { read_all(bytes({0x15})); }) == ms::ErrorCode::kIntegrity);
  CHECK(code_of([&] {
          read_all(bytes({0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
        }) == ms::ErrorCode::kIntegrity);  // an 11-byte varint
  CHECK(code_of([&] {
          read_all(bytes({0x19, 0xF5, 0xFF, 0xFF, 0xFF, 0x0F}));
        }) == ms::ErrorCode::kIntegrity);  // a list of 4 billion elements in no bytes
  CHECK(code_of([&] { read_all(bytes({0x1D})); }) == ms::ErrorCode::kIntegrity);  // type 13
  // Structs nested far deeper than any footer: an error, not a stack overflow.
  CHECK(code_of([&] { read_all(std::string(100000, '\x1C')); }) == ms::ErrorCode::kIntegrity);
}

TEST_CASE("RLE / bit-packed hybrid: runs, bit-packed groups, bounds") {
  // An RLE run of five 3s (width 2), then one bit-packed group of 0..7 (width 3), as in
  // parquet-format's Encodings.md.
  const std::string rle = bytes({0x0A, 0x03});
  CHECK(parquet::decode_rle_hybrid(rle, 2, 5, "t") == std::vector<std::uint32_t>{3, 3, 3, 3, 3});
  const std::string packed = bytes({0x03, 0x88, 0xC6, 0xFA});
  CHECK(parquet::decode_rle_hybrid(packed, 3, 8, "t") ==
        std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  // Fewer wanted than the group holds: the padding is ignored.
  CHECK(parquet::decode_rle_hybrid(packed, 3, 6, "t") ==
        std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5});
  CHECK(parquet::decode_rle_hybrid(rle + packed, 3, 13, "t").size() == 13);
  // Width 0: every value is 0, the runs' lengths only.
  CHECK(parquet::decode_rle_hybrid(bytes({0x08}), 0, 4, "t") ==
        std::vector<std::uint32_t>{0, 0, 0, 0});
  CHECK(code_of([&] { parquet::decode_rle_hybrid(rle, 33, 5, "t"); }) == ms::ErrorCode::kIntegrity);
  CHECK(code_of([&] { parquet::decode_rle_hybrid(rle, 2, 6, "t"); }) ==
        ms::ErrorCode::kIntegrity);  // runs end early
  CHECK(code_of([&] {
          parquet::decode_rle_hybrid(bytes({0x03, 0x88}), 3, 8, "t");
        }) == ms::ErrorCode::kIntegrity);  // a group longer than the data
  CHECK(code_of([&] {
          parquet::decode_rle_hybrid(bytes({0x0A, 0x07}), 2, 5, "t");
        }) == ms::ErrorCode::kIntegrity);  // a run value wider than its bit width
  // A bit-packed run of 2^62 groups at width 0 must not overflow the count.
  CHECK(parquet::decode_rle_hybrid(bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}), 0,
                                   3, "t")
            .size() == 3);
}

TEST_CASE("DELTA_BINARY_PACKED: header, first value, miniblocks") {
  // Block of 128 in 4 miniblocks, 5 values, first 1, min delta 1, widths 0: 1, 2, 3, 4, 5.
  const std::string b = bytes({0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00});
  std::vector<std::int64_t> out;
  CHECK(parquet::decode_delta_binary_packed(b, 5, out, "t") == b.size());
  CHECK(out == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(code_of([&] { parquet::decode_delta_binary_packed(b, 6, out, "t"); }) ==
        ms::ErrorCode::kIntegrity);
  CHECK(code_of([&] { parquet::decode_delta_binary_packed(b.substr(0, 7), 5, out, "t"); }) ==
        ms::ErrorCode::kIntegrity);
}

TEST_CASE("parquet: a file pyarrow wrote reads as datasets shows it") {
  const Table t = parse_parquet(kSmallFile, "small.parquet");
  REQUIRE(t.columns.size() == 4);
  CHECK(t.columns[0].name == "id");
  CHECK(t.columns[0].type == ColumnType::kInt);
  CHECK(t.columns[1].type == ColumnType::kString);
  CHECK(t.columns[2].type == ColumnType::kJson);
  CHECK(t.columns[3].type == ColumnType::kBool);
  REQUIRE(t.rows.size() == 3);
  CHECK(std::get<std::int64_t>(t.rows[0][0]) == 1);
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][0]));
  CHECK(std::get<std::int64_t>(t.rows[2][0]) == 3);
  CHECK(std::get<std::string>(t.rows[1][1]) == "h\xC3\xA9llo");
  CHECK(std::holds_alternative<std::monostate>(t.rows[2][1]));
  CHECK(std::get<std::string>(t.rows[0][2]) == "[1,2]");
  // A null list is a null cell, as a JSON lines null is: the text "null" was read as a word.
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][2]));
  CHECK(std::get<std::string>(t.rows[2][2]) == "[]");
  CHECK(std::get<bool>(t.rows[0][3]));
  CHECK_FALSE(std::get<bool>(t.rows[1][3]));
}

TEST_CASE("parquet: a single file's x:FILE column holds paths beside it, as a CSV file's does") {
  // pa.table({"image:FILE": ["a.png"], "label": pa.array([1], pa.int64())}), written as above
  // (dictionary off): the column was left as the text "a.png", unresolved.
  const std::string file = from_hex(
      "504152311500151e151e2c15021500150615061c00000002000000020105000000612e706e671500151c151c2c"
      "15021500150615061c00000002000000020101000000000000001504193c35001806736368656d6115040015"
      "0c2502180a696d6167653a46494c4525004c1c0000001504250218056c6162656c001602191c192c26001c15"
      "0c1925060019180a696d6167653a46494c4515001602164416442608491c150015001502003c160a1906192600"
      "0200000026001c1504192506001918056c6162656c1500160216421642264c491c150015001502003c29061926"
      "000200000016860116022608168601002820706172717565742d6370702d6172726f772076657273696f6e2032"
      "362e302e31192c1c00001c000000d300000050415231");
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ms-parquet-file-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "t.parquet", std::ios::binary) << file;
  std::ofstream(dir / "a.png") << "not decoded here";
  for (const std::string spec :
       {"parquet:" + (dir / "t.parquet").string(), (dir / "t.parquet").string()}) {
    const Dataset ds = load_dataset(spec);
    const Table& t = ds.only_split().table;
    REQUIRE(t.columns.size() == 2);
    CHECK(t.columns[0].type == ColumnType::kImage);
    CHECK(std::get<std::string>(t.rows[0][0]) == (dir / "a.png").string());
  }
  // A path that is not there is named, as for CSV.
  std::filesystem::remove(dir / "a.png");
  CHECK(code_of([&] { load_dataset((dir / "t.parquet").string()); }) == ms::ErrorCode::kNotFound);
  std::filesystem::remove_all(dir);
}

// tests/data/parquet/README.md says how the files were written and what datasets reads.
TEST_CASE("parquet: datasets' Json columns hold JSON values, ClassLabel columns their names") {
  const std::filesystem::path dir = std::filesystem::path(MS_TEST_DATA_DIR) / "parquet";
  const Table t = read_parquet(dir / "hf_features.parquet");
  REQUIRE(t.columns.size() == 4);
  CHECK(t.columns[0].type == ColumnType::kInt);
  CHECK(t.columns[0].class_names.empty());
  // The Json feature: pyarrow's extension<arrow.json>, stored as JSON text. Before, "m" was a
  // string column of the texts ("\"text\"", "5").
  CHECK(t.columns[1].type == ColumnType::kJson);
  REQUIRE(t.rows.size() == 3);
  CHECK(cell_value(t.rows[0][1], t.columns[1].type) == Value(std::string("text")));
  CHECK(cell_value(t.rows[1][1], t.columns[1].type) == Value(std::int64_t{5}));
  CHECK(std::get<std::string>(t.rows[2][1]) == R"({"k":[1,null],"b":2})");  // keys in order
  CHECK(t.columns[2].type == ColumnType::kInt);
  CHECK(t.columns[2].class_names == std::vector<std::string>{"neg", "pos"});
  CHECK(std::get<std::int64_t>(t.rows[0][2]) == 1);
  CHECK(t.columns[3].type == ColumnType::kJson);
  CHECK(t.columns[3].class_names == std::vector<std::string>{"O", "B"});
  CHECK(std::get<std::string>(t.rows[0][3]) == "[0,1]");
}

TEST_CASE(
    "parquet: malformed datasets metadata is passed over with a warning, a bad Json cell "
    "named") {
  const std::filesystem::path dir = std::filesystem::path(MS_TEST_DATA_DIR) / "parquet";
  std::vector<std::string> warnings;
  auto previous = ms::log::set_sink([&](ms::log::Level level, std::string_view m) {
    if (level == ms::log::Level::kWarning) warnings.emplace_back(m);
  });
  Table t;
  try {
    t = read_parquet(dir / "hf_features_bad_metadata.parquet");
  } catch (...) {
    ms::log::set_sink(previous);
    throw;
  }
  ms::log::set_sink(previous);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("hf_features_bad_metadata.parquet") != std::string::npos);
  CHECK(warnings[0].find("\"huggingface\" metadata") != std::string::npos);
  REQUIRE(t.columns.size() == 4);
  CHECK(t.columns[1].type == ColumnType::kString);  // as its Parquet type says
  CHECK(t.columns[2].class_names.empty());
  const std::string message = [&] {
    try {
      read_parquet(dir / "hf_json_bad_cell.parquet");
    } catch (const ms::Error& e) {
      CHECK(e.code() == ms::ErrorCode::kIntegrity);
      return std::string(e.what());
    }
    return std::string();
  }();
  CHECK(message.find("hf_json_bad_cell.parquet: column 'm'") != std::string::npos);
  CHECK(message.find("row 2") != std::string::npos);
}

TEST_CASE("parquet: bad magic and a metadata length beyond the file are kIntegrity") {
  CHECK(code_of([] { parse_parquet("PAR1", "x.parquet"); }) == ms::ErrorCode::kIntegrity);
  std::string f = kSmallFile;
  f[0] = 'Q';
  CHECK(code_of([&] { parse_parquet(f, "x.parquet"); }) == ms::ErrorCode::kIntegrity);
  f = kSmallFile;
  f[f.size() - 6] = '\x7F';  // the metadata length's third byte: beyond the file
  CHECK(code_of([&] { parse_parquet(f, "x.parquet"); }) == ms::ErrorCode::kIntegrity);
  try {
    parse_parquet(f, "x.parquet");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.what()).find("x.parquet") != std::string::npos);
  }
}

TEST_CASE("parquet: every truncation of a valid file is an ms::Error, never a crash") {
  for (std::size_t n = 0; n < kSmallFile.size(); ++n) {
    INFO("truncated to " << n << " bytes");
    CHECK_THROWS_AS(parse_parquet(kSmallFile.substr(0, n), "cut.parquet"), ms::Error);
  }
  // The same with the footer kept whole (its offsets then point into missing or shifted data).
  const std::size_t footer = kSmallFile.size() - 8 - 391;
  for (std::size_t n = 4; n < footer; ++n) {
    std::string f = kSmallFile.substr(0, n) + kSmallFile.substr(footer);
    try {
      parse_parquet(f, "cut.parquet");
    } catch (const ms::Error& e) {
      CHECK(e.code() != ms::ErrorCode::kInternal);
    }
  }
}

TEST_CASE("parquet: every byte changed is a table or an ms::Error, never a crash") {
  for (std::size_t i = 0; i < kSmallFile.size(); ++i) {
    for (const int x : {0x00, 0xFF, 0x80, 0x7F}) {
      std::string f = kSmallFile;
      f[i] = static_cast<char>(x);
      try {
        const Table t = parse_parquet(f, "flip.parquet");
        CHECK(t.rows.size() <= 3);
      } catch (const ms::Error& e) {
        INFO("byte " << i << " = " << x << ": " << e.what());
        CHECK(e.code() != ms::ErrorCode::kInternal);
      }
    }
  }
}
