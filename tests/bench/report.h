// Benchmark figures and their report: the table PERFORMANCE.md shows and one JSON line per
// figure. Used by the flowscope-bench runner from its main thread only.
//
//   FigureResult r = RatioFigure("B2", "ring_write_ns_0_readers", "ns/record", ours_runs,
//                                baseline_runs, Target::AtMostTimesBaseline(2.0));
//   std::cout << FormatTable({r});
//   json_out << FormatJsonLine(r) << "\n";
#ifndef FLOWSCOPE_TESTS_BENCH_REPORT_H_
#define FLOWSCOPE_TESTS_BENCH_REPORT_H_

#include <optional>
#include <string>
#include <vector>

namespace flowscope::bench {

// Median of the samples (mean of the middle two for an even count); 0 for none.
double Median(std::vector<double> samples);

// How a figure is judged.
struct Target {
  enum class Kind {
    kAtLeastTimesBaseline,  // ours >= factor × baseline   (throughputs)
    kAtMostTimesBaseline,   // ours <= factor × baseline   (costs)
    kAtLeast,               // ours >= value               (absolute floor)
    kAtMost,                // ours <= value               (absolute ceiling)
  };
  Kind kind;
  double value;
  std::string unit;  // for absolute targets, printed after the value

  static Target AtLeastTimesBaseline(double f) { return {Kind::kAtLeastTimesBaseline, f, ""}; }
  static Target AtMostTimesBaseline(double f) { return {Kind::kAtMostTimesBaseline, f, ""}; }
  static Target AtLeast(double v, std::string unit) { return {Kind::kAtLeast, v, unit}; }
  static Target AtMost(double v, std::string unit) { return {Kind::kAtMost, v, unit}; }

  std::string Describe() const;
  bool Met(double ours, std::optional<double> baseline) const;
};

struct FigureResult {
  std::string id;                  // "B2"
  std::string figure;              // "ring_write_ns_0_readers"
  std::string unit;                // "ns/record"
  double ours = 0;                 // median over runs
  std::optional<double> baseline;  // median over runs; none where the figure has no baseline
  std::vector<Target> targets;     // all must be met
  int runs = 0;

  std::optional<double> Ratio() const;
  bool Met() const;
  std::string TargetText() const;
};

// Builds a result from per-run samples (medians taken here).
FigureResult MakeFigure(std::string id, std::string figure, std::string unit,
                        std::vector<double> ours_runs,
                        std::optional<std::vector<double>> baseline_runs,
                        std::vector<Target> targets);

// Human-readable number: 3 significant digits (whole numbers from 100), k from 10,000, M from
// 1e6, G from 1e9.
std::string FormatNumber(double v);

// The aligned table with a header row, one row per figure.
std::string FormatTable(const std::vector<FigureResult>& results);

// {"id":..,"figure":..,"unit":..,"ours":..,"baseline":..|null,"ratio":..|null,"target":..,
//  "met":..,"runs":..}
std::string FormatJsonLine(const FigureResult& r);

}  // namespace flowscope::bench

#endif  // FLOWSCOPE_TESTS_BENCH_REPORT_H_
