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
//       name: deathstar-no-xwing  # optional: flows this rule drops name it (egress_denied_by /
//       namespace: default        #   ingress_denied_by, --print-policy-names); kind defaults to
//       kind: FlowscopePolicy     #   FlowscopePolicy
//
// A rule drops the packets it matches; each drop is reported twice, as Cilium does: the drop
// (event type 1) and the policy verdict (type 5, "policy-verdict:L3-L4 INGRESS DENIED").
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
  std::string name;  // "" = unnamed
  std::string namespace_name;
  std::string kind;  // "FlowscopePolicy" when a name is given without one
};

// flow.Flow.policy_match_type of what a rule matches: L3-Only, L3-L4, L4-Only, all, L3-Proto
// or Proto-Only, as Cilium names what matched.
int32_t PolicyMatchType(const PolicyRule& rule);

// Parses the file format above; a bad rule fails the whole policy (naming the rule), so a typo
// never silently opens or closes traffic.
absl::StatusOr<std::vector<PolicyRule>> ParsePolicy(absl::string_view text);

// Expands rules into datapath deny rules using the endpoint table for pod rules. A pod rule
// whose pods are not known yet yields no datapath rule (until they are). Named rules get their
// name's id in `table` (InternPolicy), which the datapath reports with each drop.
absl::StatusOr<std::vector<bpf::DenyRule>> ResolvePolicy(const std::vector<PolicyRule>& rules,
                                                         EndpointTable& table);

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_POLICY_H_
