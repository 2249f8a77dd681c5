// Operator files (policy, endpoints, peers, configs): reading one whole with an error that names
// the file and the cause, and the signature that tells whether it changed since it was read.
// Pure functions; callable from any thread.
//
//   FLOWSCOPE_ASSIGN_OR_RETURN(std::string text, ReadOperatorFile(path, "policy file"));
//   if (FileSignature(path) != last) { ...reload... }
#ifndef FLOWSCOPE_API_FILE_UTIL_H_
#define FLOWSCOPE_API_FILE_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowscope {

// Files larger than this are refused unless a caller says otherwise: an operator file is small.
inline constexpr uint64_t kMaxOperatorFileBytes = 64ull << 20;

// The whole regular file at `path`. Errors start with "<what> <path>: " and name the cause:
// not found, permission denied, a directory, a symlink loop, larger than `max_bytes`.
absl::StatusOr<std::string> ReadOperatorFile(const std::string& path, absl::string_view what,
                                             uint64_t max_bytes = kMaxOperatorFileBytes);

// Modification time, size and inode of the file `path` names (through symlinks), or "" when it
// cannot be looked at. A file replaced by rename or edited in place gets a new signature.
std::string FileSignature(const std::string& path);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_FILE_UTIL_H_
