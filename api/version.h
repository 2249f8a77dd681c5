// flowscope's version, once: the number comes from CMake's project(VERSION ...) and every
// program and status answer names it through these.
//
//   resp->set_version(std::string(kObserverVersion));  // "flowscope v0.1.0"
#ifndef FLOWSCOPE_API_VERSION_H_
#define FLOWSCOPE_API_VERSION_H_

#include "absl/strings/string_view.h"

#ifndef FLOWSCOPE_VERSION
#error "FLOWSCOPE_VERSION comes from CMake (flowscope::api)"
#endif

namespace flowscope {

inline constexpr absl::string_view kVersionNumber = FLOWSCOPE_VERSION;
// What the observer and the CLI report (Hubble's "hubble v0.x" shape), and the relay.
inline constexpr absl::string_view kObserverVersion = "flowscope v" FLOWSCOPE_VERSION;
inline constexpr absl::string_view kClientVersion = "flowscope v" FLOWSCOPE_VERSION;
inline constexpr absl::string_view kRelayVersion = "flowscope-relay v" FLOWSCOPE_VERSION;

}  // namespace flowscope

#endif  // FLOWSCOPE_API_VERSION_H_
