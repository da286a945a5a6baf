// Status and Result<T>: how domain code reports failure (no exceptions on the I/O path).
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gantry::common {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong; retrying the same input will not help
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,  // the state does not allow it (e.g. a revision or generation mismatch)
  kPermissionDenied,
  kUnauthenticated,
  kResourceExhausted,  // a limit was hit (size, queue, rate); may succeed later
  kUnavailable,        // a peer or dependency is not reachable right now
  kDeadlineExceeded,
  kOutOfRange,  // e.g. a revision older than the compacted history
  kCancelled,
  kAborted,
  kDataLoss,
  kInternal,
  kUnimplemented,
};

std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: pod default/web not found"
  std::string to_string() const;

  // Adds context in front of the message: "loading edgecore.yaml: " + message.
  Status with_context(std::string_view context) const;

  void ignore_error() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status ok_status() {
  return Status();
}

template <typename... Args>
Status make_error(Code code, fmt::format_string<Args...> format, Args&&... args) {
  return Status(code, fmt::format(format, std::forward<Args>(args)...));
}

// Result<T> holds a value or a failed Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(data_).ok() && "a Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }

  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace gantry::common

#define GANTRY_CONCAT_INNER(a, b) a##b
#define GANTRY_CONCAT(a, b) GANTRY_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) failed.
#define GANTRY_RETURN_IF_ERROR(expr)                  \
  do {                                                \
    ::gantry::common::Status gantry_status_ = (expr); \
    if (!gantry_status_.ok()) return gantry_status_;  \
  } while (false)

// `GANTRY_ASSIGN_OR_RETURN(auto x, make_x());` binds the value or returns the error.
#define GANTRY_ASSIGN_OR_RETURN(lhs, expr)                   \
  auto GANTRY_CONCAT(gantry_result_, __LINE__) = (expr);     \
  if (!GANTRY_CONCAT(gantry_result_, __LINE__).ok())         \
    return GANTRY_CONCAT(gantry_result_, __LINE__).status(); \
  lhs = std::move(GANTRY_CONCAT(gantry_result_, __LINE__)).value()
