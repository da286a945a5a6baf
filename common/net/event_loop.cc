#include "common/net/event_loop.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <optional>

namespace gantry::common {

namespace asio = boost::asio;

struct TimerHandle::State {
  explicit State(asio::io_context& ioc) : timer(ioc) {}
  asio::steady_timer timer;
  std::atomic<bool> cancelled{false};
};

TimerHandle::~TimerHandle() {
  cancel();
}

TimerHandle& TimerHandle::operator=(TimerHandle&& other) noexcept {
  if (this != &other) {
    cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}

void TimerHandle::cancel() {
  if (!state_) return;
  state_->cancelled = true;
  // Cancel on the loop so that the timer object is only touched by loop threads; this also frees
  // the pending wait (and what its callback captured) right away.
  auto state = std::move(state_);
  asio::post(state->timer.get_executor(), [state] { state->timer.cancel(); });
}

void TimerHandle::detach() {
  state_.reset();
}

struct EventLoop::Impl {
  explicit Impl(int threads) : ioc(threads), work(asio::make_work_guard(ioc)) {}
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::mutex mu;
  std::vector<std::thread> threads;
  std::vector<std::thread::id> thread_ids;
  bool started = false;
  bool stopped = false;
};

EventLoop::EventLoop(int threads)
    : impl_(std::make_unique<Impl>(std::max(1, threads))), thread_count_(std::max(1, threads)) {}

EventLoop::~EventLoop() {
  stop();
}

void EventLoop::run() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started || impl_->stopped) return;
  impl_->started = true;
  for (int i = 0; i < thread_count_; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
    impl_->thread_ids.push_back(impl_->threads.back().get_id());
  }
}

void EventLoop::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->work.reset();
    impl_->ioc.stop();
    threads.swap(impl_->threads);
  }
  for (auto& thread : threads) {
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();  // stop() from a loop thread: it returns to run() and ends by itself
    } else {
      thread.join();
    }
  }
}

void EventLoop::post(std::function<void()> fn) {
  asio::post(impl_->ioc, std::move(fn));
}

TimerHandle EventLoop::schedule(std::chrono::steady_clock::duration delay,
                                std::function<void()> fn) {
  auto state = std::make_shared<TimerHandle::State>(impl_->ioc);
  state->timer.expires_after(delay);
  // The pending wait keeps the state alive (a detached handle still fires); cancel() ends the
  // wait, which releases it.
  state->timer.async_wait([state, fn = std::move(fn)](const boost::system::error_code& ec) {
    if (ec || state->cancelled) return;
    fn();
  });
  return TimerHandle(std::move(state));
}

bool EventLoop::in_loop_thread() const {
  return impl_->ioc.get_executor().running_in_this_thread();
}

asio::io_context& EventLoop::context() {
  return impl_->ioc;
}

}  // namespace gantry::common
