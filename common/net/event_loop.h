// EventLoop: the io_context and the threads that run it. Every other module runs its callbacks
// through it; it is the only way code outside common/net touches Asio.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace gantry::common {

// A cancellable timer registration. Cancels the timer when destroyed (RAII) unless detach()ed.
// Must not outlive the EventLoop that made it.
class [[nodiscard]] TimerHandle {
 public:
  TimerHandle() = default;
  ~TimerHandle();
  TimerHandle(TimerHandle&&) noexcept = default;
  TimerHandle& operator=(TimerHandle&& other) noexcept;
  TimerHandle(const TimerHandle&) = delete;
  TimerHandle& operator=(const TimerHandle&) = delete;

  // The callback will not run after cancel() returns unless it is already running.
  void cancel();
  // Lets the timer fire even after this handle is gone.
  void detach();

  struct State;

 private:
  friend class EventLoop;
  explicit TimerHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

class EventLoop {
 public:
  // `threads` worker threads run the loop once run() is called (at least 1).
  explicit EventLoop(int threads = 1);
  // Stops the loop and joins the threads.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the worker threads; returns immediately. Calling it twice is harmless.
  void run();
  // Stops the loop (pending handlers are abandoned) and joins the threads. Idempotent. Must not
  // be called from a loop thread.
  void stop();

  // Runs `fn` on one of the loop threads.
  void post(std::function<void()> fn);
  // Runs `fn` on a loop thread after `delay`, unless the returned handle is cancelled first.
  TimerHandle schedule(std::chrono::steady_clock::duration delay, std::function<void()> fn);

  // True when called from one of this loop's threads.
  bool in_loop_thread() const;
  int thread_count() const { return thread_count_; }

  // For common/net's own classes.
  boost::asio::io_context& context();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int thread_count_;
};

}  // namespace gantry::common
