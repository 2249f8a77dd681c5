// Status propagation macros for absl::Status / absl::StatusOr (abseil 20220623 has none).
// Usable from any thread; they only evaluate their arguments.
//
//   absl::Status Load(const std::string& path) {
//     FLOWSCOPE_RETURN_IF_ERROR(CheckPath(path));
//     FLOWSCOPE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     FLOWSCOPE_ASSIGN_OR_RETURN(auto parsed, Parse(text));
//     ...
//   }
#ifndef FLOWSCOPE_API_STATUS_MACROS_H_
#define FLOWSCOPE_API_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) once and returns it from the enclosing function if not OK.
#define FLOWSCOPE_RETURN_IF_ERROR(expr)                                                           \
  do {                                                                                            \
    if (::absl::Status flowscope_status_ = (expr); ABSL_PREDICT_FALSE(!flowscope_status_.ok())) { \
      return flowscope_status_;                                                                   \
    }                                                                                             \
  } while (false)

#define FLOWSCOPE_STATUS_CONCAT_INNER_(a, b) a##b
#define FLOWSCOPE_STATUS_CONCAT_(a, b) FLOWSCOPE_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>) once; on error returns its status from the enclosing
// function, otherwise moves the value into `lhs`, which may be a declaration (`auto x`).
#define FLOWSCOPE_ASSIGN_OR_RETURN(lhs, rexpr)                                                   \
  FLOWSCOPE_ASSIGN_OR_RETURN_IMPL_(FLOWSCOPE_STATUS_CONCAT_(flowscope_statusor_, __LINE__), lhs, \
                                   rexpr)

#define FLOWSCOPE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) {                    \
    return std::move(statusor).status();                       \
  }                                                            \
  lhs = *std::move(statusor)

#endif  // FLOWSCOPE_API_STATUS_MACROS_H_
