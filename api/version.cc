#include "api/version.h"

#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace flowscope {
namespace {

std::string Compiler() {
#if defined(__clang__)
  return absl::StrCat("clang ", __clang_major__, ".", __clang_minor__, ".", __clang_patchlevel__);
#elif defined(__GNUC__)
  return absl::StrCat("gcc ", __GNUC__, ".", __GNUC_MINOR__, ".", __GNUC_PATCHLEVEL__);
#else
  return "an unknown compiler";
#endif
}

constexpr absl::string_view kArch =
#if defined(__x86_64__)
    "amd64";
#elif defined(__aarch64__)
    "arm64";
#elif defined(__i386__)
    "386";
#elif defined(__arm__)
    "arm";
#else
    "unknown";
#endif

std::optional<std::pair<int, int>> MajorMinor(absl::string_view v) {
  v = absl::StripAsciiWhitespace(v);
  absl::ConsumePrefix(&v, "v");
  v = v.substr(0, v.find_first_of("-+"));
  const std::vector<absl::string_view> parts = absl::StrSplit(v, '.');
  int major = 0, minor = 0;
  if (parts.empty() || !absl::SimpleAtoi(parts[0], &major)) return std::nullopt;
  if (parts.size() > 1 && !absl::SimpleAtoi(parts[1], &minor)) return std::nullopt;
  return std::make_pair(major, minor);
}

}  // namespace

std::string BuildInfo(absl::string_view program) {
  const absl::string_view branch = FLOWSCOPE_GIT_BRANCH;
  const absl::string_view hash = FLOWSCOPE_GIT_HASH;
  std::string git;
  if (!branch.empty() && !hash.empty()) {
    git = absl::StrCat("@", branch, "-", hash);
  } else if (!hash.empty()) {
    git = absl::StrCat("@", hash);
  }
  return absl::StrCat(program, " v", kVersionNumber, git, " compiled with ", Compiler(),
                      " on linux/", kArch);
}

bool VersionIsLower(absl::string_view client, absl::string_view server) {
  const auto c = MajorMinor(client);
  const auto s = MajorMinor(server);
  return c && s && *c < *s;
}

}  // namespace flowscope
