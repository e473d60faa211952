// The SVG charts of the training report (svg.h).
//
// Dims: N points on the x axis, S series, R x C heat-map cells, B bars, E images of H x W pixels.
//
// Layout is computed, never measured: text widths are estimated at kCharWidth pixels per
// character of the 11 px generic sans-serif font, and long labels are cut with an ellipsis (the
// full text stays in a <title> tooltip). Coordinates are printed with one decimal so the output
// is the same on every machine.
#include "moe/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>

#include <fmt/format.h>

namespace moe::report {

namespace {

constexpr double kCharWidth = 6.2;     // average advance of an 11 px sans-serif glyph
constexpr int kTitleY = 18;            // baseline of the chart title
constexpr int kPlotTop = 34;           // top of the plot area
constexpr int kPlotLeft = 62;          // room for y tick labels and the rotated y label
constexpr int kPlotBottom = 44;        // room for x tick labels and the x label
constexpr int kLegendWidth = 170;      // right-hand legend column
constexpr int kMaxLegendEntries = 16;  // more series are summarised as "+n more"
constexpr const char* kAxisColor = "#444444";
constexpr const char* kGridColor = "#e4e4e4";
constexpr const char* kBarColor = "#4c78a8";
constexpr const char* kWarnColor = "#d62728";

using Out = std::back_insert_iterator<std::string>;

// The label cut to `max_chars` characters with an ellipsis; counts UTF-8 code points so a
// multi-byte character is never split.
std::string truncate_label(const std::string& text, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return text.substr(0, i) + "\xE2\x80\xA6";
      ++chars;
    }
  }
  return text;
}

size_t label_chars(const std::string& text) {
  size_t chars = 0;
  for (char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return chars;
}

// <text> with escaped, possibly truncated content; the full text goes into a <title> child when
// it was cut.
void put_text(Out out, double x, double y, const std::string& text, const char* anchor,
              size_t max_chars = 64, const std::string& extra = "") {
  const std::string shown = truncate_label(text, max_chars);
  fmt::format_to(out, R"(<text x="{:.1f}" y="{:.1f}" text-anchor="{}"{}>)", x, y, anchor, extra);
  if (shown != text) fmt::format_to(out, "<title>{}</title>", escape_xml(text));
  fmt::format_to(out, "{}</text>", escape_xml(shown));
}

// One chart's <svg> element: the constructor opens it (size, title tooltip, white background,
// the title line); close() ends it and hands over the text, close_no_data() says "no data" first.
class SvgFrame {
 public:
  SvgFrame(const std::string& title, int width, int height) : width_(width), height_(height) {
    fmt::format_to(out(),
                   R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" )"
                   R"(viewBox="0 0 {0} {1}" font-family="sans-serif" font-size="11" role="img">)",
                   width, height);
    fmt::format_to(out(), "<title>{}</title>", escape_xml(title));
    fmt::format_to(out(), R"(<rect width="{}" height="{}" fill="#ffffff"/>)", width, height);
    put_text(out(), width / 2.0, kTitleY, title, "middle", 90,
             R"( font-size="13" font-weight="bold")");
  }
  SvgFrame(const SvgFrame&) = delete;
  SvgFrame& operator=(const SvgFrame&) = delete;

  Out out() { return Out(svg_); }

  std::string close() {
    svg_ += "</svg>";
    return std::move(svg_);
  }

  // "no data" in the middle of the top `area_height` pixels (0: the whole chart), then close().
  std::string close_no_data(int area_height = 0) {
    const int h = area_height > 0 ? area_height : height_;
    put_text(out(), width_ / 2.0, h / 2.0, "no data", "middle", 64, R"( fill="#888888")");
    return close();
  }

 private:
  std::string svg_;
  int width_, height_;
};

// Maps a data interval onto a pixel interval.
struct Axis {
  double lo = 0.0, hi = 1.0;  // data
  double p0 = 0.0, p1 = 1.0;  // pixels
  double map(double v) const { return hi == lo ? p0 : p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

// Ticks for a value axis; with `integers` the step is at least 1 (epochs).
std::vector<double> axis_ticks(Range r, bool integers, int target) {
  if (integers && r.hi == r.lo) {  // one epoch: centre it between its neighbours
    r.lo -= 1.0;
    r.hi += 1.0;
  }
  std::vector<double> ticks = nice_ticks(r.lo, r.hi, target);
  if (integers && ticks.size() > 1 && ticks[1] - ticks[0] < 1.0) {
    ticks.clear();
    for (double v = std::floor(r.lo); v <= std::ceil(r.hi); v += 1.0) ticks.push_back(v);
  }
  return ticks;
}

// Grid lines, tick labels and axis titles around the plot rectangle.
void draw_axes(Out out, const Axis& x, const std::vector<double>& x_ticks, const Axis& y,
               const std::vector<double>& y_ticks, const ChartFrame& frame) {
  for (double t : y_ticks) {
    const double py = y.map(t);
    fmt::format_to(out, R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}"/>)",
                   x.p0, py, x.p1, py, kGridColor);
    put_text(out, x.p0 - 5, py + 4, format_number(t), "end");
  }
  for (double t : x_ticks) {
    const double px = x.map(t);
    fmt::format_to(out, R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}"/>)",
                   px, y.p0, px, y.p0 + 4, kAxisColor);
    put_text(out, px, y.p0 + 16, format_number(t), "middle");
  }
  fmt::format_to(out, R"(<path d="M{:.1f} {:.1f}V{:.1f}H{:.1f}" fill="none" stroke="{}"/>)", x.p0,
                 y.p1, y.p0, x.p1, kAxisColor);
  put_text(out, (x.p0 + x.p1) / 2, y.p0 + 34, frame.x_label, "middle");
  const double cy = (y.p0 + y.p1) / 2;
  put_text(out, 14, cy, frame.y_label, "middle", 40,
           fmt::format(R"~( transform="rotate(-90 14 {:.1f})")~", cy));
}

// A legend entry: a swatch (line or box) and the name.
void legend_entry(Out out, double x, double y, const std::string& name, const std::string& color,
                  bool line, bool dashed) {
  if (line) {
    fmt::format_to(out,
                   R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" )"
                   R"(stroke-width="2"{}/>)",
                   x, y - 4, x + 18, y - 4, color, dashed ? R"( stroke-dasharray="5 3")" : "");
  } else {
    fmt::format_to(out, R"(<rect x="{:.1f}" y="{:.1f}" width="12" height="10" fill="{}"/>)", x,
                   y - 9, color);
  }
  put_text(out, x + 24, y, name, "start", 21);
}

// Legend of named colours in the right-hand column, at most kMaxLegendEntries lines.
void draw_legend(Out out, double x, double top, const std::vector<std::string>& names,
                 const std::vector<std::string>& colors, const std::vector<bool>& dashed,
                 bool line) {
  const size_t shown = names.size() > kMaxLegendEntries ? kMaxLegendEntries - 1 : names.size();
  for (size_t i = 0; i < shown; ++i) {
    legend_entry(out, x, top + 14.0 * (i + 1), names[i], colors[i], line,
                 i < dashed.size() && dashed[i]);
  }
  if (shown < names.size()) {
    put_text(out, x, top + 14.0 * (shown + 1), fmt::format("+{} more", names.size() - shown),
             "start");
  }
}

std::string hex_color(double r, double g, double b) {
  auto c = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 255.0))); };
  return fmt::format("#{:02x}{:02x}{:02x}", c(r), c(g), c(b));
}

}  // namespace

std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += "\xEF\xBF\xBD";
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0.0) return "0";
  // Up to seven digits read better whole (a price of 248000, not 2.48e+05).
  if (std::abs(value) >= 1e4 && std::abs(value) < 1e7) return fmt::format("{:.0f}", value);
  return fmt::format("{:.4g}", value);
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0.0, 1.0};
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    const double pad = lo == 0.0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * magnitude;
  // The tolerance keeps a range that ends a rounding error past a tick (load shares summing to
  // 1.0000001) from gaining a whole extra step.
  const double first = std::floor(lo / step + 1e-6);
  const double last = std::ceil(hi / step - 1e-6);
  std::vector<double> ticks;
  for (double i = first; i <= last; i += 1.0) {
    const double v = i * step;
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);  // no -0 or 1e-17 at zero
  }
  return ticks;
}

std::string series_color(int64_t index) {
  static constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (index >= 0 && index < 10) return kPalette[index];
  // HSL with hue steps of the golden angle (137.5 degrees) keeps neighbours apart.
  const double h = std::fmod(static_cast<double>(index) * 137.508, 360.0) / 60.0;
  const double s = 0.55, l = 0.5;
  const double c = (1 - std::abs(2 * l - 1)) * s;
  const double x = c * (1 - std::abs(std::fmod(h, 2.0) - 1));
  const double m = l - c / 2;
  double r = 0, g = 0, b = 0;
  if (h < 1)
    r = c, g = x;
  else if (h < 2)
    r = x, g = c;
  else if (h < 3)
    g = c, b = x;
  else if (h < 4)
    g = x, b = c;
  else if (h < 5)
    r = x, b = c;
  else
    r = c, b = x;
  return hex_color((r + m) * 255, (g + m) * 255, (b + m) * 255);
}

std::string scale_color(double t) {
  // Piecewise-linear through five stops, pale yellow to dark blue (a YlGnBu-like ramp whose
  // lightness falls monotonically, so order reads without a legend and in grey print).
  static constexpr double kStops[5][3] = {
      {255, 255, 217}, {199, 233, 180}, {65, 182, 196}, {34, 94, 168}, {8, 29, 88}};
  if (!std::isfinite(t)) return "#ffffff";
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  return hex_color(kStops[i][0] + f * (kStops[i + 1][0] - kStops[i][0]),
                   kStops[i][1] + f * (kStops[i + 1][1] - kStops[i][1]),
                   kStops[i][2] + f * (kStops[i + 1][2] - kStops[i][2]));
}

std::string line_chart_svg(const LineChart& chart) {
  const ChartFrame& f = chart.frame;
  SvgFrame svg(f.title, f.width, f.height);
  Out out = svg.out();
  Range xr, yr;
  bool integers = true;
  for (const Series& s : chart.series) {
    const size_t n = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xr.add(s.x[i]);
      yr.add(s.y[i]);
      integers = integers && s.x[i] == std::floor(s.x[i]);
    }
  }
  if (xr.empty()) return svg.close_no_data();
  if (chart.y_from_zero) yr.add(0.0);
  const std::vector<double> xt = axis_ticks(xr, integers, 8);
  const std::vector<double> yt = axis_ticks(yr, false, 5);
  const Axis x{xt.front(), xt.back(), static_cast<double>(kPlotLeft),
               static_cast<double>(f.width - kLegendWidth)};
  const Axis y{yt.front(), yt.back(), static_cast<double>(f.height - kPlotBottom),
               static_cast<double>(kPlotTop)};
  draw_axes(out, x, xt, y, yt, f);

  std::vector<std::string> names, colors;
  std::vector<bool> dashed;
  for (size_t si = 0; si < chart.series.size(); ++si) {
    const Series& s = chart.series[si];
    const std::string color = series_color(static_cast<int64_t>(si));
    const size_t n = std::min(s.x.size(), s.y.size());
    std::string d;
    bool pen_down = false;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        pen_down = false;  // a gap, not a line through a missing value
        continue;
      }
      fmt::format_to(std::back_inserter(d), "{}{:.1f} {:.1f}", pen_down ? "L" : "M", x.map(s.x[i]),
                     y.map(s.y[i]));
      pen_down = true;
    }
    if (!d.empty()) {
      fmt::format_to(out, R"(<path d="{}" fill="none" stroke="{}" stroke-width="2"{}/>)", d, color,
                     s.dashed ? R"( stroke-dasharray="5 3")" : "");
    }
    // Dots make single points and short runs visible; past 60 points they only add clutter.
    if (n <= 60) {
      for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
        fmt::format_to(out, R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>)", x.map(s.x[i]),
                       y.map(s.y[i]), color);
      }
    }
    names.push_back(s.name);
    colors.push_back(color);
    dashed.push_back(s.dashed);
  }
  draw_legend(out, f.width - kLegendWidth + 12, kPlotTop - 4, names, colors, dashed, true);
  return svg.close();
}

std::string heat_map_svg(const HeatMap& map) {
  const ChartFrame& f = map.frame;
  const size_t rows = map.values.size();
  size_t cols = 0;
  for (const auto& row : map.values) cols = std::max(cols, row.size());
  if (rows == 0 || cols == 0) return SvgFrame(f.title, f.width, 120).close_no_data();
  Range vr;
  for (const auto& row : map.values)
    for (double v : row) vr.add(v);
  double vmin = map.min_value, vmax = map.max_value;
  if (vmin == vmax) {
    vmin = vr.empty() ? 0.0 : vr.lo;
    vmax = vr.empty() ? 1.0 : vr.hi;
  }
  auto name_of = [](const std::vector<std::string>& names, size_t i) {
    return i < names.size() ? names[i] : std::to_string(i);
  };

  size_t longest_row = 1, longest_col = 1;
  for (size_t r = 0; r < rows; ++r)
    longest_row = std::max(longest_row, label_chars(name_of(map.row_names, r)));
  for (size_t c = 0; c < cols; ++c)
    longest_col = std::max(longest_col, label_chars(name_of(map.col_names, c)));
  const size_t row_chars = std::min<size_t>(longest_row, 22);
  const double left = 34 + row_chars * kCharWidth;  // row names plus the rotated y label
  const double right = 96;                          // colour bar and its labels
  const double cell_w = std::min(56.0, (f.width - left - right) / static_cast<double>(cols));
  const double cell_h = std::clamp(cell_w * 0.75, 6.0, 26.0);
  const size_t col_chars = std::min<size_t>(longest_col, 14);
  const bool rotate = col_chars * kCharWidth > cell_w - 2;
  const double label_band = rotate ? 12 + col_chars * kCharWidth * 0.87 : 18;  // sin(60°)
  const double top = kPlotTop;
  const double plot_h = cell_h * rows;
  const int height = static_cast<int>(std::ceil(top + plot_h + label_band + 26));
  // Label every n-th row / column when the cells are smaller than the text.
  const size_t row_every = static_cast<size_t>(std::ceil(11.0 / cell_h));
  const size_t col_every = static_cast<size_t>(std::ceil(11.0 / cell_w));
  const bool annotate = cell_w >= 34 && cell_h >= 14;
  const bool tooltips = rows * cols <= 1024;  // a <title> per cell; bounded to keep files small

  // As wide as the cells need (a small matrix does not stretch), but room for the title.
  const int width =
      std::min(f.width, std::max(static_cast<int>(std::ceil(left + cell_w * cols + right)),
                                 static_cast<int>(label_chars(f.title) * 7.5) + 20));
  SvgFrame svg(f.title, width, height);
  Out out = svg.out();
  for (size_t r = 0; r < rows; ++r) {
    const double py = top + r * cell_h;
    if (r % row_every == 0)
      put_text(out, left - 5, py + cell_h / 2 + 4, name_of(map.row_names, r), "end", row_chars);
    for (size_t c = 0; c < cols; ++c) {
      const double v =
          c < map.values[r].size() ? map.values[r][c] : std::numeric_limits<double>::quiet_NaN();
      const double t = vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5;
      const double px = left + c * cell_w;
      fmt::format_to(out, R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}")",
                     px, py, cell_w, cell_h, scale_color(std::isfinite(v) ? t : NAN));
      if (tooltips) {
        fmt::format_to(out, "><title>{} / {}: {}</title></rect>",
                       escape_xml(name_of(map.row_names, r)), escape_xml(name_of(map.col_names, c)),
                       format_number(v));
      } else {
        fmt::format_to(out, "/>");
      }
      if (annotate && std::isfinite(v)) {
        // Two significant digits fit a cell; the tooltip has four.
        put_text(out, px + cell_w / 2, py + cell_h / 2 + 4,
                 v == 0.0 ? std::string("0") : fmt::format("{:.2g}", v), "middle", 8,
                 t > 0.55 ? R"( fill="#ffffff" font-size="10")" : R"( font-size="10")");
      }
    }
  }
  fmt::format_to(out,
                 R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" )"
                 R"(stroke="{}"/>)",
                 left, top, cell_w * cols, plot_h, kAxisColor);
  const double base = top + plot_h;
  for (size_t c = 0; c < cols; c += col_every) {
    const double cx = left + (c + 0.5) * cell_w;
    if (rotate) {
      put_text(out, cx + 3, base + 10, name_of(map.col_names, c), "end", col_chars,
               fmt::format(R"~( transform="rotate(-60 {:.1f} {:.1f})")~", cx + 3, base + 10));
    } else {
      put_text(out, cx, base + 14, name_of(map.col_names, c), "middle", col_chars);
    }
  }
  put_text(out, left + cell_w * cols / 2, base + label_band + 18, f.x_label, "middle");
  const double cy = top + plot_h / 2;
  put_text(out, 12, cy, f.y_label, "middle", 40,
           fmt::format(R"~( transform="rotate(-90 12 {:.1f})")~", cy));

  // Colour bar: 20 steps from max (top) to min (bottom).
  const double bar_x = left + cell_w * cols + 18;
  const double bar_h = std::max(60.0, std::min(plot_h, 160.0));
  constexpr int kSteps = 20;
  for (int i = 0; i < kSteps; ++i) {
    fmt::format_to(out, R"(<rect x="{:.1f}" y="{:.1f}" width="12" height="{:.2f}" fill="{}"/>)",
                   bar_x, top + i * bar_h / kSteps, bar_h / kSteps + 0.05,
                   scale_color(1.0 - (i + 0.5) / kSteps));
  }
  put_text(out, bar_x + 16, top + 9, format_number(vmax), "start");
  put_text(out, bar_x + 16, top + bar_h, format_number(vmin), "start");
  put_text(out, bar_x - 4, top + bar_h + 16, map.value_label, "start", 15);
  return svg.close();
}

std::string bar_chart_svg(const BarChart& chart) {
  const ChartFrame& f = chart.frame;
  SvgFrame svg(f.title, f.width, f.height);
  Out out = svg.out();
  const size_t n = std::min(chart.names.size(), chart.values.size());
  Range yr;
  yr.add(0.0);
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    yr.add(chart.values[i]);
    any = any || std::isfinite(chart.values[i]);
  }
  if (!any) return svg.close_no_data();
  const bool has_reference = !chart.reference_label.empty() && std::isfinite(chart.reference);
  if (has_reference) yr.add(chart.reference);
  const std::vector<double> yt = axis_ticks(yr, false, 5);
  const Axis x{0.0, static_cast<double>(n), static_cast<double>(kPlotLeft),
               static_cast<double>(f.width - kLegendWidth)};
  const Axis y{yt.front(), yt.back(), static_cast<double>(f.height - kPlotBottom),
               static_cast<double>(kPlotTop)};
  draw_axes(out, x, {}, y, yt, f);
  const double slot = (x.p1 - x.p0) / n;
  const double bar_w = std::max(1.0, slot * 0.8);
  size_t longest = 1;
  for (size_t i = 0; i < n; ++i) longest = std::max(longest, label_chars(chart.names[i]));
  const size_t every = static_cast<size_t>(std::ceil(longest * kCharWidth / slot));
  bool any_highlight = false;
  for (size_t i = 0; i < n; ++i) {
    const double v = chart.values[i];
    const bool warn = i < chart.highlight.size() && chart.highlight[i];
    any_highlight = any_highlight || warn;
    const double px = x.p0 + i * slot + (slot - bar_w) / 2;
    if (std::isfinite(v)) {
      const double top = y.map(std::max(v, 0.0)), bottom = y.map(std::min(v, 0.0));
      fmt::format_to(out,
                     R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">)"
                     R"(<title>{}: {}</title></rect>)",
                     px, top, bar_w, std::max(bottom - top, 0.5), warn ? kWarnColor : kBarColor,
                     escape_xml(chart.names[i]), format_number(v));
    }
    if (i % every == 0) put_text(out, px + bar_w / 2, y.p0 + 14, chart.names[i], "middle", 12);
  }
  double legend_y = kPlotTop + 10;
  const double lx = f.width - kLegendWidth + 12;
  legend_entry(out, lx, legend_y, f.y_label, kBarColor, false, false);
  if (any_highlight) {
    legend_y += 14;
    legend_entry(out, lx, legend_y, chart.highlight_label, kWarnColor, false, false);
  }
  if (has_reference) {
    const double py = y.map(chart.reference);
    fmt::format_to(out,
                   R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#222222" )"
                   R"(stroke-width="1.5" stroke-dasharray="6 4"/>)",
                   x.p0, py, x.p1, py);
    legend_y += 14;
    fmt::format_to(out,
                   R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#222222" )"
                   R"(stroke-width="1.5" stroke-dasharray="6 4"/>)",
                   lx, legend_y - 4, lx + 18, legend_y - 4);
    put_text(out, lx + 24, legend_y, chart.reference_label, "start", 21);
  }
  return svg.close();
}

std::string stacked_area_svg(const StackedArea& chart) {
  const ChartFrame& f = chart.frame;
  SvgFrame svg(f.title, f.width, f.height);
  Out out = svg.out();
  const size_t n = chart.x.size();
  const size_t s_count = chart.values.size();
  if (n == 0 || s_count == 0) return svg.close_no_data();
  // Cumulative tops: stack[s][i] = sum of series 0..s at point i (non-finite counts as 0).
  std::vector<std::vector<double>> stack(s_count, std::vector<double>(n, 0.0));  // [S][N]
  for (size_t s = 0; s < s_count; ++s) {
    for (size_t i = 0; i < n; ++i) {
      const double v = i < chart.values[s].size() ? chart.values[s][i] : 0.0;
      stack[s][i] = (s > 0 ? stack[s - 1][i] : 0.0) + (std::isfinite(v) ? std::max(v, 0.0) : 0.0);
    }
  }
  Range xr, yr;
  yr.add(0.0);
  bool integers = true;
  for (size_t i = 0; i < n; ++i) {
    xr.add(chart.x[i]);
    yr.add(stack.back()[i]);
    integers = integers && chart.x[i] == std::floor(chart.x[i]);
  }
  const std::vector<double> xt = axis_ticks(xr, integers, 8);
  const std::vector<double> yt = axis_ticks(yr, false, 5);
  const Axis x{xt.front(), xt.back(), static_cast<double>(kPlotLeft),
               static_cast<double>(f.width - kLegendWidth)};
  const Axis y{yt.front(), yt.back(), static_cast<double>(f.height - kPlotBottom),
               static_cast<double>(kPlotTop)};
  draw_axes(out, x, xt, y, yt, f);
  // A single point is drawn as a band half a tick wide so it stays visible.
  const double half = n == 1 ? (xt.back() - xt.front()) / 8 : 0.0;
  std::vector<std::string> names, colors;
  for (size_t s = 0; s < s_count; ++s) {
    const std::string color = series_color(static_cast<int64_t>(s));
    std::string d;
    auto point = [&](double px, double py, bool first) {
      fmt::format_to(std::back_inserter(d), "{}{:.1f} {:.1f}", first ? "M" : "L", x.map(px),
                     y.map(py));
    };
    for (size_t i = 0; i < n; ++i) {
      if (n == 1) {
        point(chart.x[0] - half, stack[s][0], true);
        point(chart.x[0] + half, stack[s][0], false);
      } else {
        point(chart.x[i], stack[s][i], i == 0);
      }
    }
    for (size_t i = n; i-- > 0;) {
      const double base = s > 0 ? stack[s - 1][i] : 0.0;
      if (n == 1) {
        point(chart.x[0] + half, base, false);
        point(chart.x[0] - half, base, false);
      } else {
        point(chart.x[i], base, false);
      }
    }
    fmt::format_to(out, R"(<path d="{}Z" fill="{}" stroke="#ffffff" stroke-width="0.5">)", d,
                   color);
    const std::string name = s < chart.names.size() ? chart.names[s] : std::to_string(s);
    fmt::format_to(out, "<title>{}</title></path>", escape_xml(name));
    names.push_back(name);
    colors.push_back(color);
  }
  draw_legend(out, f.width - kLegendWidth + 12, kPlotTop - 4, names, colors, {}, false);
  return svg.close();
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 |
                       static_cast<uint8_t>(bytes[i + 1]) << 8 | static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const uint32_t v =
        static_cast<uint8_t>(bytes[i]) << 16 | (two ? static_cast<uint8_t>(bytes[i + 1]) << 8 : 0);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += two ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string gray_bmp_data_uri(int64_t height, int64_t width, const std::vector<double>& pixels) {
  // BITMAPFILEHEADER (14 bytes) + BITMAPINFOHEADER (40 bytes), 24 bits per pixel, rows stored
  // bottom-up in BGR order, each padded to a multiple of 4 bytes.
  const int64_t row_bytes = (width * 3 + 3) / 4 * 4;
  const int64_t image_bytes = row_bytes * height;
  std::string bmp(static_cast<size_t>(54 + image_bytes), '\0');
  auto put32 = [&](size_t at, uint32_t v) {
    for (int b = 0; b < 4; ++b) bmp[at + b] = static_cast<char>((v >> (8 * b)) & 0xFF);
  };
  bmp[0] = 'B';
  bmp[1] = 'M';
  put32(2, static_cast<uint32_t>(bmp.size()));
  put32(10, 54);
  put32(14, 40);
  put32(18, static_cast<uint32_t>(width));
  put32(22, static_cast<uint32_t>(height));
  bmp[26] = 1;   // planes
  bmp[28] = 24;  // bits per pixel
  put32(34, static_cast<uint32_t>(image_bytes));
  put32(38, 2835);  // 72 dpi
  put32(42, 2835);
  for (int64_t r = 0; r < height; ++r) {
    const size_t row_at = 54 + static_cast<size_t>((height - 1 - r) * row_bytes);
    for (int64_t c = 0; c < width; ++c) {
      const size_t idx = static_cast<size_t>(r * width + c);
      const double v = idx < pixels.size() && std::isfinite(pixels[idx]) ? pixels[idx] : 0.0;
      const char g = static_cast<char>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
      for (int ch = 0; ch < 3; ++ch) bmp[row_at + c * 3 + ch] = g;
    }
  }
  return "data:image/bmp;base64," + base64_encode(bmp);
}

std::string image_grid_svg(const ImageGrid& grid) {
  const size_t n = grid.pixels.size();
  const int columns =
      std::max(1, std::min<int>(grid.columns, static_cast<int>(std::max<size_t>(n, 1))));
  const int rows = static_cast<int>((n + columns - 1) / columns);
  const int pitch_x = grid.cell + 12, pitch_y = grid.cell + 22;
  const int width = std::max(240, columns * pitch_x + 12);
  const int height = kPlotTop + std::max(1, rows) * pitch_y + 4;
  SvgFrame svg(grid.title, width, n == 0 ? 120 : height);
  Out out = svg.out();
  if (n == 0 || grid.height <= 0 || grid.width <= 0) return svg.close_no_data(120);
  for (size_t i = 0; i < n; ++i) {
    const int px = 12 + static_cast<int>(i % columns) * pitch_x;
    const int py = kPlotTop + static_cast<int>(i / columns) * pitch_y;
    fmt::format_to(out,
                   R"(<image x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="none" )"
                   R"(style="image-rendering:pixelated" href="{}"/>)",
                   px, py, grid.cell, grid.cell,
                   gray_bmp_data_uri(grid.height, grid.width, grid.pixels[i]));
    fmt::format_to(out,
                   R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999999"/>)",
                   px, py, grid.cell, grid.cell);
    const std::string caption = i < grid.captions.size() ? grid.captions[i] : std::to_string(i);
    put_text(out, px + grid.cell / 2.0, py + grid.cell + 14, caption, "middle",
             static_cast<size_t>(grid.cell / kCharWidth));
  }
  return svg.close();
}

}  // namespace moe::report
