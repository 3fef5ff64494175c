#pragma once
// A response body written by scatter-gather: small pieces owned here (encoded fields, patched
// batch headers) interleaved with views into shared read-cache buffers (record batches), so a
// Fetch response's records reach the socket without being copied in user space.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sh::broker {

class response_gather {
 public:
  // Appends bytes owned by the response (copied here).
  void append_owned(const uint8_t* data, size_t size) {
    if (size == 0) return;
    if (!_pieces.empty() && _pieces.back().owned) {
      _pieces.back().size += size;
    } else {
      _pieces.push_back(piece{true, _owned.size(), nullptr, size});
    }
    _owned.insert(_owned.end(), data, data + size);
    _size += size;
  }
  void append_owned(const std::vector<uint8_t>& bytes) { append_owned(bytes.data(), bytes.size()); }
  // Appends a view of `size` bytes at `data`, kept alive by `owner`.
  void append_view(std::shared_ptr<const void> owner, const uint8_t* data, size_t size) {
    if (size == 0) return;
    if (_owners.empty() || _owners.back() != owner) _owners.push_back(std::move(owner));
    _pieces.push_back(piece{false, 0, data, size});
    _size += size;
  }
  size_t size() const { return _size; }
  // Calls fn(const uint8_t* data, size_t size) for every piece in order.
  template <class Fn>
  void for_each_piece(Fn&& fn) const {
    for (const auto& p : _pieces) fn(p.owned ? _owned.data() + p.offset : p.data, p.size);
  }
  std::vector<uint8_t> flatten() const {
    std::vector<uint8_t> out;
    out.reserve(_size);
    for_each_piece([&](const uint8_t* d, size_t n) { out.insert(out.end(), d, d + n); });
    return out;
  }

 private:
  struct piece {
    bool owned;
    size_t offset;  // into _owned when owned
    const uint8_t* data;
    size_t size;
  };
  std::vector<uint8_t> _owned;
  std::vector<piece> _pieces;
  std::vector<std::shared_ptr<const void>> _owners;
  size_t _size = 0;
};

}  // namespace sh::broker
