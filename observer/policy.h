// Deny policy for the datapath, read from a JSON or YAML file:
//
//   deny:
//     - from: 10.0.1.6          # address or CIDR; omitted or "any": any source
//       to: 10.0.2.0/24
//       protocol: tcp           # any, tcp, udp, sctp, icmp, icmpv6
//       port: 80                # destination port; 0 or omitted: any
//     - fromPod: default/xwing  # pods instead of addresses ("ns/name-prefix", as --pod)
//       toPod: default/deathstar
//       protocol: tcp
//       port: 80
//
// Pod rules are resolved to the pods' current addresses whenever the endpoint table changes.
// Pure functions plus one resolver; callable from any thread.
#ifndef FLOWSCOPE_OBSERVER_POLICY_H_
#define FLOWSCOPE_OBSERVER_POLICY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bpf/datapath.h"
#include "observer/endpoint_table.h"

namespace flowscope::observer {

struct PolicyRule {
  std::string from;  // address / CIDR / "" (any)
  std::string to;
  std::string from_pod;  // "ns/prefix" or ""
  std::string to_pod;
  std::string protocol;  // "" = any
  int port = 0;
};

// Parses the file format above; a bad rule fails the whole policy (naming the rule), so a typo
// never silently opens or closes traffic.
absl::StatusOr<std::vector<PolicyRule>> ParsePolicy(absl::string_view text);

// Expands rules into datapath deny rules using the endpoint table for pod rules. A pod rule
// whose pods are not known yet yields no datapath rule (until they are).
absl::StatusOr<std::vector<bpf::DenyRule>> ResolvePolicy(const std::vector<PolicyRule>& rules,
                                                         const EndpointTable& table);

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_POLICY_H_
