#include "api/metrics.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace flowscope {

MetricsFormat NegotiateMetricsFormat(absl::string_view accept) {
  for (absl::string_view range : absl::StrSplit(accept, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(range, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]),
                                "application/openmetrics-text")) {
      continue;
    }
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&p, "q=") && !absl::SimpleAtod(p, &q)) q = 0;
    }
    if (q > 0) return MetricsFormat::kOpenMetrics;
  }
  return MetricsFormat::kText;
}

absl::string_view MetricsContentType(MetricsFormat format) {
  return format == MetricsFormat::kOpenMetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 9.007199254740992e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  // The shortest form that reads back as the same double.
  for (int precision = 1; precision < 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, value);
    if (std::strtod(shorter, nullptr) == value) return shorter;
  }
  return buf;
}

namespace {

// HELP text: backslash and newline escaped (both formats).
void AppendHelp(absl::string_view help, std::string* out) {
  for (char c : help) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

// A label value: backslash, double quote and newline escaped.
void AppendLabelValue(absl::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '"':
        out->append("\\\"");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(c);
    }
  }
}

}  // namespace

void MetricsWriter::Start(absl::string_view name, absl::string_view help, bool counter) {
  family_ = std::string(name);
  absl::string_view family = name;
  if (counter && format_ == MetricsFormat::kOpenMetrics) absl::ConsumeSuffix(&family, "_total");
  absl::StrAppend(&out_, "# HELP ", family, " ");
  AppendHelp(help, &out_);
  absl::StrAppend(&out_, "\n# TYPE ", family, counter ? " counter\n" : " gauge\n");
}

void MetricsWriter::Counter(absl::string_view name, absl::string_view help) {
  Start(name, help, true);
}

void MetricsWriter::Gauge(absl::string_view name, absl::string_view help) {
  Start(name, help, false);
}

void MetricsWriter::Value(double value) {
  absl::StrAppend(&out_, " ", FormatMetricValue(value), "\n");
}

void MetricsWriter::Sample(absl::Span<const std::pair<absl::string_view, absl::string_view>> labels,
                           double value) {
  out_.append(family_);
  if (!labels.empty()) {
    out_.push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out_.push_back(',');
      absl::StrAppend(&out_, labels[i].first, "=\"");
      AppendLabelValue(labels[i].second, &out_);
      out_.push_back('"');
    }
    out_.push_back('}');
  }
  Value(value);
}

void MetricsWriter::Sample(absl::Span<const std::string> names,
                           absl::Span<const std::string> values, double value) {
  std::vector<std::pair<absl::string_view, absl::string_view>> labels;
  labels.reserve(names.size());
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    labels.emplace_back(names[i], values[i]);
  }
  Sample(absl::MakeConstSpan(labels), value);
}

std::string MetricsWriter::Finish() && {
  if (format_ == MetricsFormat::kOpenMetrics) out_.append("# EOF\n");
  return std::move(out_);
}

std::string MetricsCollectors::Render(MetricsFormat format) const {
  MetricsWriter w(format);
  std::lock_guard<std::mutex> lock(mu_);
  for (const Collector& c : collectors_) c(w);
  return std::move(w).Finish();
}

}  // namespace flowscope
