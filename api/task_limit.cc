#include "api/task_limit.h"

#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace flowscope {
namespace {

std::optional<int64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  int64_t v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) return std::nullopt;  // "max"
  return v;
}

// The pids directories of this process's cgroup and its ancestors, innermost first.
std::vector<std::string> PidsDirectories(const std::string& proc_cgroup, const std::string& root) {
  std::ifstream in(proc_cgroup);
  std::string line;
  std::string v1, v2;
  bool have_v1 = false, have_v2 = false;
  while (std::getline(in, line)) {
    // id:controllers:path
    const std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    for (absl::string_view c : absl::StrSplit(parts[1], ',')) {
      if (c == "pids") {
        v1 = parts[2];
        have_v1 = true;
      }
    }
    if (parts[0] == "0" && parts[1].empty()) {
      v2 = parts[2];
      have_v2 = true;
    }
  }
  std::string base, path;
  if (have_v1) {
    base = root + "/pids";
    path = v1;
  } else if (have_v2) {
    base = root;
    path = v2;
  } else {
    return {};
  }
  std::vector<std::string> dirs;
  while (true) {
    dirs.push_back(base + (path == "/" ? "" : path));
    if (path.empty() || path == "/") break;
    const size_t slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return dirs;
}

}  // namespace

std::optional<TaskUse> TightestTaskLimit(const std::string& proc_cgroup, const std::string& root) {
  std::optional<TaskUse> tightest;
  for (const std::string& dir : PidsDirectories(proc_cgroup, root)) {
    const std::optional<int64_t> max = ReadNumber(dir + "/pids.max");
    if (!max) continue;  // "max", or no such file (the root)
    const std::optional<int64_t> current = ReadNumber(dir + "/pids.current");
    if (!current) continue;
    TaskUse use{*current, *max, dir};
    if (!tightest || use.headroom() < tightest->headroom()) tightest = use;
  }
  return tightest;
}

}  // namespace flowscope
