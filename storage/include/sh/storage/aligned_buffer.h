#pragma once
// aligned_buffer: a byte buffer whose start is page-aligned (4096) and whose allocation is a
// whole number of pages, so the local store can hand it to an O_DIRECT write without a bounce
// copy (the padding past size() is writable scratch). resize() never zero-fills, and a buffer
// that is reused keeps its pages: on VMs that hand freed pages back to the host, writing into
// fresh pages costs about 10x writing into reused ones. Not thread-safe; move-only.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <span>
#include <utility>

namespace sh::storage {

class aligned_buffer {
 public:
  static constexpr size_t alignment = 4096;

  aligned_buffer() = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  aligned_buffer(aligned_buffer&& o) noexcept
      : _data(std::exchange(o._data, nullptr)),
        _size(std::exchange(o._size, 0)),
        _capacity(std::exchange(o._capacity, 0)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    if (this != &o) {
      std::free(_data);
      _data = std::exchange(o._data, nullptr);
      _size = std::exchange(o._size, 0);
      _capacity = std::exchange(o._capacity, 0);
    }
    return *this;
  }
  ~aligned_buffer() { std::free(_data); }

  // Sets the size to n. Within the capacity the bytes are kept; beyond it the buffer is
  // reallocated and its old contents are dropped (callers fill it after resizing). New bytes
  // are uninitialized. Throws std::bad_alloc like std::vector when memory runs out.
  void resize_uninitialized(size_t n) {
    if (n > _capacity) {
      const size_t cap = round_up(n);
      void* p = std::aligned_alloc(alignment, cap);
      if (p == nullptr) throw std::bad_alloc();
      std::free(_data);
      _data = static_cast<uint8_t*>(p);
      _capacity = cap;
    }
    _size = n;
  }
  // Frees the memory.
  void release() {
    std::free(_data);
    _data = nullptr;
    _size = _capacity = 0;
  }

  uint8_t* data() { return _data; }
  const uint8_t* data() const { return _data; }
  size_t size() const { return _size; }
  // Always a multiple of `alignment`, and at least size().
  size_t capacity() const { return _capacity; }
  bool empty() const { return _size == 0; }
  std::span<uint8_t> span() { return {_data, _size}; }
  std::span<const uint8_t> span() const { return {_data, _size}; }
  operator std::span<const uint8_t>() const { return span(); }

  static constexpr size_t round_up(size_t n) {
    return n == 0 ? alignment : (n + alignment - 1) / alignment * alignment;
  }

 private:
  uint8_t* _data = nullptr;
  size_t _size = 0;
  size_t _capacity = 0;
};

}  // namespace sh::storage
