#pragma once
// Asio glue private to the broker: offloading blocking calls to the bounded pool and one-shot
// events. Included only by broker .cc files (keeps Asio out of widely included headers).
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange
// clang-format on

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>
#include <type_traits>

namespace sh::broker {

namespace asio = boost::asio;
template <class T>
using awaitable = asio::awaitable<T>;

// Runs a blocking function on `pool` and resumes the awaiting coroutine on its own executor.
template <class F>
awaitable<std::invoke_result_t<F>> run_blocking(asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F>;
  std::optional<R> out;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&pool, &f, &out](auto handler) {
        auto ex = asio::get_associated_executor(handler);
        asio::post(pool, [&f, &out, ex, handler = std::move(handler)]() mutable {
          out.emplace(f());
          asio::post(ex, std::move(handler));
        });
      },
      asio::use_awaitable);
  co_return std::move(*out);
}

// Awaits a value delivered once from any thread through the callback `start` is handed.
// `start(cb)` must arrange for `cb(T)` to be called exactly once.
template <class T, class Start>
awaitable<T> await_callback(Start start) {
  std::optional<T> out;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&out, &start](auto handler) {
        auto ex = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        start([&out, ex, shared](T value) mutable {
          out.emplace(std::move(value));
          asio::post(ex, std::move(*shared));
        });
      },
      asio::use_awaitable);
  co_return std::move(*out);
}

}  // namespace sh::broker
