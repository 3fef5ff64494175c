#pragma once
// result<T, E>: a value or an error (an enum code plus a human-readable message).
// Errors are values on the data path; [[nodiscard]] makes ignoring one a compile error.
#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sh {

template <class E>
struct error_info {
  E code{};
  std::string message;
};

template <class E>
error_info<E> make_error(E code, std::string message = {}) {
  return error_info<E>{code, std::move(message)};
}

template <class T, class E>
class [[nodiscard]] result {
 public:
  using value_type = T;
  using error_type = error_info<E>;

  result(T value) : _v(std::in_place_index<0>, std::move(value)) {}  // NOLINT(implicit)
  result(error_type err) : _v(std::in_place_index<1>, std::move(err)) {}  // NOLINT(implicit)

  bool has_value() const noexcept { return _v.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(_v); }
  const T& value() const& { assert(has_value()); return std::get<0>(_v); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(_v)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error_type& error() const { assert(!has_value()); return std::get<1>(_v); }
  E code() const { return has_value() ? E{} : error().code; }
  const std::string& message() const { return error().message; }

 private:
  std::variant<T, error_type> _v;
};

template <class E>
class [[nodiscard]] result<void, E> {
 public:
  using error_type = error_info<E>;
  result() = default;
  result(error_type err) : _err(std::move(err)), _ok(false) {}  // NOLINT(implicit)

  bool has_value() const noexcept { return _ok; }
  explicit operator bool() const noexcept { return _ok; }
  void value() const { assert(_ok); }
  const error_type& error() const { assert(!_ok); return _err; }
  E code() const { return _ok ? E{} : _err.code; }
  const std::string& message() const { return _err.message; }

 private:
  error_type _err{};
  bool _ok = true;
};

}  // namespace sh
