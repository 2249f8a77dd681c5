// How `flowscope observe` turns filter flags into GetFlowsRequest whitelists and blacklists,
// exactly as Hubble's CLI does (the reference §3.4): a "left" filter for source-side values
// and a "right" one for destination-side values, sent as [left, right] (or [left] when they
// are the same); `--not` sends the next flag to the blacklist; repeated flags OR; conflicting
// flags are refused. Pure; any thread.
//
//   FilterBuilder b;
//   FLOWSCOPE_RETURN_IF_ERROR(b.Add("pod", "default/xwing"));
//   FLOWSCOPE_RETURN_IF_ERROR(b.Add("not", ""));
//   FLOWSCOPE_RETURN_IF_ERROR(b.Add("namespace", "kube-system"));
//   FLOWSCOPE_ASSIGN_OR_RETURN(auto f, b.Build());   // f.whitelist, f.blacklist
#ifndef FLOWSCOPE_CMD_CLI_FILTERS_H_
#define FLOWSCOPE_CMD_CLI_FILTERS_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flow/flow.pb.h"

namespace flowscope::cli {

struct Filters {
  std::vector<flow::FlowFilter> whitelist;
  std::vector<flow::FlowFilter> blacklist;
};

// Every filter flag FilterBuilder::Add understands (long names without dashes), plus "not".
const std::vector<std::string>& FilterFlagNames();

// The fixed values a filter flag takes, for shell completion ({} when it takes free text).
std::vector<std::string> FilterFlagValues(absl::string_view flag);

class FilterBuilder {
 public:
  // Applies one flag occurrence, in command-line order. `flag` is the long name without
  // dashes ("pod", "from-ip", "not", ...); boolean flags pass "". Errors name the flag/value.
  absl::Status Add(absl::string_view flag, absl::string_view value);

  // Finishes: namespace prefixes, deduplication, the trailing-`--not` check.
  absl::StatusOr<Filters> Build();

 private:
  struct Tracker {
    flow::FlowFilter left;
    flow::FlowFilter right;
    std::set<std::string> used;  // flags seen, for conflicts
    // Namespaces for [filter: 0 left, 1 right][side: 0 source, 1 destination].
    std::vector<std::string> namespaces[2][2];
    // The namespace flags as given: --namespace, --from-namespace, --to-namespace ("" for the
    // all-namespaces forms), for Hubble's conflict checks.
    std::vector<std::string> ns, src_ns, dst_ns;
    bool any = false;
  };
  absl::Status Apply(Tracker& t, absl::string_view flag, absl::string_view value);
  static absl::Status CheckNamespaces(const Tracker& t, const flow::FlowFilter& f);
  static absl::Status Finish(Tracker& t, std::vector<flow::FlowFilter>* out);

  Tracker allow_;
  Tracker deny_;
  bool not_pending_ = false;
};

// `--print-raw-filters` output: YAML with the JSON of each filter.
std::string RawFiltersYaml(const Filters& f);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_FILTERS_H_
