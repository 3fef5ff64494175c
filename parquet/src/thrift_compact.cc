#include "sh/parquet/internal/thrift_compact.h"

namespace sh::parquet::thrift {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void compact_writer::begin_struct() {
  _last_ids.push_back(_last_id);
  _last_id = 0;
}

void compact_writer::end_struct() {
  _out.push_back(static_cast<char>(ctype::stop));
  // An unbalanced end_struct is a programming error in this module; keep the state sane anyway.
  if (!_last_ids.empty()) {
    _last_id = _last_ids.back();
    _last_ids.pop_back();
  } else {
    _last_id = 0;
  }
}

void compact_writer::field_header(int16_t id, ctype t) {
  const int delta = static_cast<int>(id) - static_cast<int>(_last_id);
  if (delta > 0 && delta <= 15) {
    _out.push_back(static_cast<char>((delta << 4) | static_cast<int>(t)));
  } else {
    _out.push_back(static_cast<char>(t));
    put_varint(_out, zigzag32(id));
  }
  _last_id = id;
}

void compact_writer::field_bool(int16_t id, bool v) {
  field_header(id, v ? ctype::bool_true : ctype::bool_false);
}

void compact_writer::field_i8(int16_t id, int8_t v) {
  field_header(id, ctype::i8);
  _out.push_back(static_cast<char>(v));
}

void compact_writer::field_i16(int16_t id, int16_t v) {
  field_header(id, ctype::i16);
  put_varint(_out, zigzag32(v));
}

void compact_writer::field_i32(int16_t id, int32_t v) {
  field_header(id, ctype::i32);
  put_varint(_out, zigzag32(v));
}

void compact_writer::field_i64(int16_t id, int64_t v) {
  field_header(id, ctype::i64);
  put_varint(_out, zigzag64(v));
}

void compact_writer::field_binary(int16_t id, std::string_view v) {
  field_header(id, ctype::binary);
  elem_binary(v);
}

void compact_writer::field_struct_begin(int16_t id) {
  field_header(id, ctype::structure);
  begin_struct();
}

void compact_writer::field_list_begin(int16_t id, ctype element, uint32_t size) {
  field_header(id, ctype::list);
  if (size < 15) {
    _out.push_back(static_cast<char>((size << 4) | static_cast<uint32_t>(element)));
  } else {
    _out.push_back(static_cast<char>(0xf0 | static_cast<uint32_t>(element)));
    put_varint(_out, size);
  }
}

void compact_writer::elem_i32(int32_t v) { put_varint(_out, zigzag32(v)); }

void compact_writer::elem_i64(int64_t v) { put_varint(_out, zigzag64(v)); }

void compact_writer::elem_binary(std::string_view v) {
  put_varint(_out, v.size());
  _out.append(v);
}

}  // namespace sh::parquet::thrift
