#include "observer/policy.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/status_macros.h"
#include "api/text.h"
#include "bpf/ip_prefix.h"

namespace flowscope::observer {

namespace {

absl::Status RuleError(int index, const YAML::Node& at, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("deny rule ", index, " (line ", at.Mark().line + 1, "): ", problem));
}

absl::StatusOr<std::vector<PolicyRule>> ParsePolicyDocument(const YAML::Node& doc) {
  std::vector<PolicyRule> rules;
  if (doc.IsNull()) {
    // A file caught half-written, or emptied by mistake, must not open the datapath.
    return absl::InvalidArgumentError("the policy is empty; write `deny: []` to remove every rule");
  }
  if (!doc.IsMap() || !doc["deny"] || !(doc["deny"].IsSequence() || doc["deny"].IsNull())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", doc.Mark().line + 1, ": the policy must be a map with a `deny:` list"));
  }
  int index = 0;
  for (const auto& entry : doc["deny"]) {
    ++index;
    if (!entry.IsMap()) return RuleError(index, entry, "not a map");
    PolicyRule r;
    for (const auto& kv : entry) {
      if (!kv.first.IsScalar()) return RuleError(index, kv.first, "a key must be a name");
      const std::string key = kv.first.Scalar();
      if (!kv.second.IsScalar()) {
        return RuleError(index, kv.second, absl::StrCat(key, " must be a value"));
      }
      const std::string value = kv.second.Scalar();
      if (key == "from") {
        r.from = value;
      } else if (key == "to") {
        r.to = value;
      } else if (key == "fromPod" || key == "from_pod") {
        r.from_pod = value;
      } else if (key == "toPod" || key == "to_pod") {
        r.to_pod = value;
      } else if (key == "protocol") {
        r.protocol = value;
      } else if (key == "name") {
        r.name = value;
      } else if (key == "namespace") {
        r.namespace_name = value;
      } else if (key == "kind") {
        r.kind = value;
      } else if (key == "port") {
        if (!ParseDecimal(value, 0, 65535, &r.port)) {
          return RuleError(index, kv.second,
                           absl::StrCat("port \"", Quote(value), "\" is not a number 0-65535"));
        }
      } else {
        return RuleError(index, kv.first, absl::StrCat("unknown key \"", Quote(key), "\""));
      }
    }
    if ((!r.from.empty() && !r.from_pod.empty()) || (!r.to.empty() && !r.to_pod.empty())) {
      return RuleError(index, entry, "give either an address or a pod for each side, not both");
    }
    if (r.name.empty() && (!r.namespace_name.empty() || !r.kind.empty())) {
      return RuleError(index, entry, "namespace and kind name a rule: give it a name too");
    }
    if (!r.name.empty() && r.kind.empty()) r.kind = "FlowscopePolicy";
    for (std::string* pod : {&r.from_pod, &r.to_pod}) {
      if (!pod->empty() && !absl::StrContains(*pod, "/")) *pod = "default/" + *pod;
    }
    // Validate addresses, protocol and port now.
    if (auto check = bpf::DenyRule::Parse(r.from, r.to, r.protocol, r.port); !check.ok()) {
      return RuleError(index, entry, check.status().message());
    }
    rules.push_back(std::move(r));
  }
  return rules;
}

// The address family of a rule side ("" and "any": 0, either).
uint8_t FamilyOf(const std::string& side) {
  if (side.empty() || side == "any") return 0;
  auto p = bpf::ParseIpPrefix(side);
  return p.ok() ? p->family : 0;
}

}  // namespace

absl::StatusOr<std::vector<PolicyRule>> ParsePolicy(absl::string_view text) {
  try {
    return ParsePolicyDocument(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& e) {
    // Syntax errors, and anything yaml-cpp refuses while the document is walked.
    return absl::InvalidArgumentError(
        absl::StrCat("policy is not valid JSON or YAML: line ", e.mark.line + 1, ": ", e.msg));
  }
}

int32_t PolicyMatchType(const PolicyRule& r) {
  // Cilium's PolicyMatchType numbering (flow.Flow.policy_match_type).
  const auto any = [](const std::string& side) { return side.empty() || side == "any"; };
  const bool l3 = !any(r.from) || !any(r.to) || !r.from_pod.empty() || !r.to_pod.empty();
  const bool proto = !r.protocol.empty() && r.protocol != "any";
  if (r.port != 0) return l3 ? 2 : 3;  // L3-L4, L4-Only
  if (proto) return l3 ? 5 : 6;        // L3-Proto, Proto-Only
  return l3 ? 1 : 4;                   // L3-Only, all
}

absl::StatusOr<std::vector<bpf::DenyRule>> ResolvePolicy(const std::vector<PolicyRule>& rules,
                                                         EndpointTable& table) {
  const auto addresses = table.Addresses();
  // The addresses of the pods a "ns/prefix" names.
  auto pod_addrs = [&](const std::string& pod) {
    const size_t slash = pod.find('/');
    const std::string ns = pod.substr(0, slash);
    const std::string prefix = pod.substr(slash + 1);
    std::vector<std::string> out;
    for (const auto& [addr, id] : addresses) {
      const std::shared_ptr<const Endpoint> held = table.Get(id);
      const Endpoint& e = *held;
      if (e.namespace_name == ns && absl::StartsWith(e.pod_name, prefix) && !e.pod_name.empty()) {
        out.push_back(AddrToString(addr));
      }
    }
    return out;
  };
  std::vector<bpf::DenyRule> out;
  for (const PolicyRule& r : rules) {
    uint8_t policy = 0;
    if (!r.name.empty()) {
      policy =
          table.InternPolicy(PolicyName{0, r.name, r.namespace_name, r.kind, PolicyMatchType(r)});
    }
    const std::vector<std::string> froms =
        r.from_pod.empty() ? std::vector{r.from} : pod_addrs(r.from_pod);
    const std::vector<std::string> tos = r.to_pod.empty() ? std::vector{r.to} : pod_addrs(r.to_pod);
    for (const std::string& f : froms) {
      for (const std::string& t : tos) {
        // A dual-stack pod pair: only same-family combinations make sense.
        const uint8_t ff = FamilyOf(f);
        const uint8_t tf = FamilyOf(t);
        if (ff != 0 && tf != 0 && ff != tf) continue;
        FLOWSCOPE_ASSIGN_OR_RETURN(bpf::DenyRule rule,
                                   bpf::DenyRule::Parse(f, t, r.protocol, r.port));
        rule.raw.policy = policy;
        out.push_back(rule);
      }
    }
  }
  if (out.size() > FS_MAX_DENY_RULES) {
    return absl::ResourceExhaustedError(absl::StrCat("the policy expands to ", out.size(),
                                                     " datapath rules; at most ", FS_MAX_DENY_RULES,
                                                     " are supported"));
  }
  return out;
}

}  // namespace flowscope::observer
