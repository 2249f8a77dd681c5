#include "tests/bench/report.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace flowscope::bench {

double Median(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

std::string Target::Describe() const {
  switch (kind) {
    case Kind::kAtLeastTimesBaseline:
      return absl::StrCat(">= ", value, "x baseline");
    case Kind::kAtMostTimesBaseline:
      return absl::StrCat("<= ", value, "x baseline");
    case Kind::kAtLeast:
      return absl::StrCat(">= ", FormatNumber(value), " ", unit);
    case Kind::kAtMost:
      return absl::StrCat("<= ", FormatNumber(value), " ", unit);
  }
  return "";
}

bool Target::Met(double ours, std::optional<double> baseline) const {
  switch (kind) {
    case Kind::kAtLeastTimesBaseline:
      return baseline.has_value() && ours >= value * *baseline;
    case Kind::kAtMostTimesBaseline:
      return baseline.has_value() && ours <= value * *baseline;
    case Kind::kAtLeast:
      return ours >= value;
    case Kind::kAtMost:
      return ours <= value;
  }
  return false;
}

std::optional<double> FigureResult::Ratio() const {
  if (!baseline.has_value() || *baseline == 0) return std::nullopt;
  return ours / *baseline;
}

bool FigureResult::Met() const {
  return std::all_of(targets.begin(), targets.end(),
                     [&](const Target& t) { return t.Met(ours, baseline); });
}

std::string FigureResult::TargetText() const {
  std::vector<std::string> parts;
  for (const Target& t : targets) parts.push_back(t.Describe());
  return absl::StrJoin(parts, ", ");
}

FigureResult MakeFigure(std::string id, std::string figure, std::string unit,
                        std::vector<double> ours_runs,
                        std::optional<std::vector<double>> baseline_runs,
                        std::vector<Target> targets) {
  FigureResult r;
  r.id = std::move(id);
  r.figure = std::move(figure);
  r.unit = std::move(unit);
  r.runs = static_cast<int>(ours_runs.size());
  r.ours = Median(std::move(ours_runs));
  if (baseline_runs.has_value()) r.baseline = Median(std::move(*baseline_runs));
  r.targets = std::move(targets);
  return r;
}

std::string FormatNumber(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return absl::StrFormat("%.3gG", v / 1e9);
  if (a >= 1e6) return absl::StrFormat("%.3gM", v / 1e6);
  if (a >= 1e4) return absl::StrFormat("%.3gk", v / 1e3);
  if (a >= 100) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.3g", v);
}

std::string FormatTable(const std::vector<FigureResult>& results) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"id", "figure", "unit", "ours", "baseline", "ratio", "target", "met"});
  for (const FigureResult& r : results) {
    const auto ratio = r.Ratio();
    rows.push_back(
        {r.id, r.figure, r.unit, FormatNumber(r.ours), r.baseline ? FormatNumber(*r.baseline) : "-",
         ratio ? absl::StrFormat("%.2f", *ratio) : "-", r.targets.empty() ? "-" : r.TargetText(),
         r.targets.empty() ? "-" : (r.Met() ? "yes" : "NO")});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 3, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatJsonLine(const FigureResult& r) {
  nlohmann::json j;
  j["id"] = r.id;
  j["figure"] = r.figure;
  j["unit"] = r.unit;
  j["ours"] = r.ours;
  j["baseline"] = r.baseline ? nlohmann::json(*r.baseline) : nlohmann::json(nullptr);
  const auto ratio = r.Ratio();
  j["ratio"] = ratio ? nlohmann::json(*ratio) : nlohmann::json(nullptr);
  // A figure without a target (a reference rate such as a baseline) is neither met nor missed.
  j["target"] = r.targets.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.TargetText());
  j["met"] = r.targets.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.Met());
  j["runs"] = r.runs;
  return j.dump();
}

}  // namespace flowscope::bench
