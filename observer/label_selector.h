// Kubernetes label selectors (`k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`) over
// flowscope's "source:key=value" labels, for flow filters. Pure functions; any thread.
#ifndef FLOWSCOPE_OBSERVER_LABEL_SELECTOR_H_
#define FLOWSCOPE_OBSERVER_LABEL_SELECTOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowscope::observer {

// One requirement of a Kubernetes label selector.
struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kNotExists };
  std::string source;  // "" matches any label source ("k8s", "reserved", ...)
  std::string key;
  Op op = Op::kExists;
  std::vector<std::string> values;
};

// Parses `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated.
// Keys may carry a source: `k8s:app=x`.
absl::StatusOr<std::vector<LabelRequirement>> ParseLabelSelector(absl::string_view selector);

// Whether labels ("source:key=value") satisfy every requirement.
bool SelectorMatches(const std::vector<LabelRequirement>& selector,
                     const std::vector<std::string>& labels);

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_LABEL_SELECTOR_H_
