// A client's field mask applied to each flow a stream sends: the fields it leaves out are
// cleared through the generated code of flow.Flow and flow.Endpoint (a table, checked against
// the descriptors by its test), not reflection — the mask of every compact `observe` cost the
// observer a microsecond per flow that way. Deeper paths (l4.TCP, …) go through the compiled
// mask. The same result as protobuf's FieldMaskUtil::TrimMessage. Immutable; any thread.
#ifndef FLOWSCOPE_OBSERVER_FLOW_TRIM_H_
#define FLOWSCOPE_OBSERVER_FLOW_TRIM_H_

#include <utility>
#include <vector>

#include "api/field_mask.h"
#include "flow/flow.pb.h"

namespace flowscope::observer {

class FlowTrimmer {
 public:
  FlowTrimmer() = default;  // keeps everything
  explicit FlowTrimmer(const CompiledFieldMask& mask);

  void Trim(flow::Flow* f) const;
  // Whether it removes anything (a mask was given).
  bool active() const { return active_; }

  // The generated clear functions by field number (for the test that checks them).
  using FlowClear = void (*)(flow::Flow*);
  using EndpointClear = void (*)(flow::Endpoint*);
  static const std::vector<std::pair<int, FlowClear>>& FlowClears();
  static const std::vector<std::pair<int, EndpointClear>>& EndpointClears();

 private:
  struct EndpointPlan {
    std::vector<EndpointClear> clear;
  };

  bool active_ = false;
  std::vector<FlowClear> clear_;
  EndpointPlan source_, destination_;
  bool trim_source_ = false, trim_destination_ = false;
  // Other fields kept in part: through the compiled mask, when present.
  std::vector<std::pair<const google::protobuf::FieldDescriptor*, CompiledFieldMask>> deep_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FLOW_TRIM_H_
