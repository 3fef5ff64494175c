#pragma once
// A small writer for the Thrift compact protocol, enough for Parquet's footer (FileMetaData) and
// page headers: structs, i8/i16/i32/i64, bool, binary, lists. Written from the Thrift compact
// protocol specification; there is no reader (the writer never parses Thrift).
//
// Encoding summary (what the unit tests check):
//   integers  zigzag, then ULEB128 varint (i8 is one raw byte)
//   field     one byte (delta << 4 | type) when 1 <= id - previous id <= 15, otherwise the type
//             byte followed by the id as a zigzag varint i16; a bool field's value is its type
//             (1 true, 2 false); every struct ends with a 0 byte and starts its ids from 0
//   list      one byte (size << 4 | element type) for size < 15, otherwise 0xF0 | type and the
//             size as a varint; then the elements without field headers
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sh::parquet::thrift {

// Compact protocol type ids.
enum class ctype : uint8_t {
  stop = 0,
  bool_true = 1,
  bool_false = 2,
  i8 = 3,
  i16 = 4,
  i32 = 5,
  i64 = 6,
  dbl = 7,
  binary = 8,
  list = 9,
  set = 10,
  map = 11,
  structure = 12,
};

void put_varint(std::string& out, uint64_t v);
inline uint64_t zigzag64(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline uint32_t zigzag32(int32_t v) {
  return (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31);
}

class compact_writer {
 public:
  explicit compact_writer(std::string& out) : _out(out) {}

  // Top-level struct (or a struct element of a list): ids start again from 0.
  void begin_struct();
  // Writes the stop byte and returns to the enclosing struct's field ids.
  void end_struct();

  void field_bool(int16_t id, bool v);
  void field_i8(int16_t id, int8_t v);
  void field_i16(int16_t id, int16_t v);
  void field_i32(int16_t id, int32_t v);
  void field_i64(int16_t id, int64_t v);
  void field_binary(int16_t id, std::string_view v);
  // A struct-valued field: the header, then begin_struct(); close with end_struct().
  void field_struct_begin(int16_t id);
  // A list-valued field: the header and the list header; then exactly `size` elements.
  void field_list_begin(int16_t id, ctype element, uint32_t size);

  // List elements (no field header).
  void elem_i32(int32_t v);
  void elem_i64(int64_t v);
  void elem_binary(std::string_view v);
  // A struct element: begin_struct() ... end_struct().

 private:
  void field_header(int16_t id, ctype t);

  std::string& _out;
  std::vector<int16_t> _last_ids;
  int16_t _last_id = 0;
};

}  // namespace sh::parquet::thrift
