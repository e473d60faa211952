// Checks for the report's browser test (report_browser_test.sh), so that the test needs nothing
// beyond the build and Chromium:
//
//   report_check dom DOM.html N   every <svg> in the DOM Chromium built holds drawn shapes (at
//                                 least 5 rect/path/circle/line/image) and text (at least 10
//                                 characters), and there are exactly N of them
//   report_check png SHOT.png     the screenshot is not blank: at least 16 colours and 5% of
//                                 the sampled pixels not white (every 4th row and column)
//
// The PNG reader handles what Chromium writes: 8-bit RGB or RGBA, no interlace (PNG
// specification, RFC 2083: chunks, zlib-compressed scanlines, one filter byte per row).
// Exit 0 when the check passes, 1 with a message when it does not.
#include <zlib.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

namespace {

bool read_file(const char* path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

bool starts_tag(const std::string& s, size_t i, const char* name) {
  size_t n = 0;
  while (name[n] != '\0') ++n;
  if (s.compare(i + 1, n, name) != 0) return false;
  const char after = i + 1 + n < s.size() ? s[i + 1 + n] : '>';
  return after == ' ' || after == '>' || after == '/' || after == '\n' || after == '\t';
}

int check_dom(const char* path, int want) {
  std::string html;
  if (!read_file(path, &html)) {
    std::fprintf(stderr, "%s: cannot read\n", path);
    return 1;
  }
  struct Chart {
    int shapes = 0;
    int text = 0;
  };
  std::vector<Chart> charts;
  int depth = 0;
  for (size_t i = 0; i < html.size();) {
    if (html[i] == '<') {
      const size_t end = html.find('>', i);
      if (end == std::string::npos) break;
      if (starts_tag(html, i, "svg")) {
        ++depth;
        charts.emplace_back();
      } else if (html.compare(i, 6, "</svg>") == 0) {
        if (depth > 0) --depth;
      } else if (depth > 0) {
        for (const char* shape : {"rect", "path", "circle", "line", "image"}) {
          if (starts_tag(html, i, shape)) ++charts.back().shapes;
        }
      }
      i = end + 1;
    } else {
      if (depth > 0 && std::isspace(static_cast<unsigned char>(html[i])) == 0) ++charts.back().text;
      ++i;
    }
  }
  int empty = 0;
  for (const Chart& c : charts) empty += (c.shapes < 5 || c.text < 10) ? 1 : 0;
  std::printf("%zu charts in the DOM, %d without content\n", charts.size(), empty);
  if (static_cast<int>(charts.size()) != want || empty != 0) {
    std::fprintf(stderr, "expected %d charts, all with content\n", want);
    return 1;
  }
  return 0;
}

uint32_t be32(const std::string& s, size_t i) {
  return (uint32_t{static_cast<uint8_t>(s[i])} << 24) |
         (uint32_t{static_cast<uint8_t>(s[i + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[i + 2])} << 8) | uint32_t{static_cast<uint8_t>(s[i + 3])};
}

int fail_png(const char* path, const char* why) {
  std::fprintf(stderr, "%s: %s\n", path, why);
  return 1;
}

int check_png(const char* path) {
  std::string data;
  if (!read_file(path, &data)) return fail_png(path, "cannot read");
  if (data.size() < 8 || data.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0)
    return fail_png(path, "not a PNG");
  uint32_t width = 0, height = 0, bpp = 0;
  std::string idat;
  for (size_t pos = 8; pos + 12 <= data.size();) {
    const uint32_t length = be32(data, pos);
    if (length > data.size() - pos - 12) return fail_png(path, "truncated chunk");
    const std::string kind = data.substr(pos + 4, 4);
    if (kind == "IHDR" && length >= 13) {
      width = be32(data, pos + 8);
      height = be32(data, pos + 12);
      const auto depth = static_cast<uint8_t>(data[pos + 16]);
      const auto colour = static_cast<uint8_t>(data[pos + 17]);
      const auto interlace = static_cast<uint8_t>(data[pos + 20]);
      if (depth != 8 || (colour != 2 && colour != 6) || interlace != 0)
        return fail_png(path, "unexpected PNG format (want 8-bit RGB/RGBA, no interlace)");
      bpp = colour == 2 ? 3 : 4;
    } else if (kind == "IDAT") {
      idat.append(data, pos + 8, length);
    }
    pos += 12 + length;
  }
  if (bpp == 0 || width == 0 || height == 0 || width > 16384 || height > 16384)
    return fail_png(path, "no usable IHDR");
  const size_t stride = size_t{width} * bpp;
  std::vector<uint8_t> raw((stride + 1) * height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) !=
          Z_OK ||
      raw_size != raw.size())
    return fail_png(path, "bad image data");

  std::vector<uint8_t> prev(stride, 0), line(stride);
  std::set<uint32_t> colours;
  size_t ink = 0, sampled = 0;
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    for (size_t i = 0; i < stride; ++i) {  // undo the row filter (RFC 2083 section 6)
      const int a = i >= bpp ? line[i - bpp] : 0;
      const int b = prev[i];
      const int c = i >= bpp ? prev[i - bpp] : 0;
      int predictor = 0;
      if (filter == 1) predictor = a;
      if (filter == 2) predictor = b;
      if (filter == 3) predictor = (a + b) / 2;
      if (filter == 4) {
        const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
        predictor = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
      }
      line[i] = static_cast<uint8_t>((in[i] + predictor) & 255);
    }
    if (y % 4 == 0) {
      for (size_t x = 0; x < width; x += 4) {
        const uint8_t* px = &line[x * bpp];
        const uint32_t rgb = (uint32_t{px[0]} << 16) | (uint32_t{px[1]} << 8) | px[2];
        colours.insert(rgb);
        ink += rgb != 0xffffffu ? 1 : 0;
        ++sampled;
      }
    }
    prev.swap(line);
    line.assign(stride, 0);
  }
  std::printf("%ux%u screenshot: %zu colours, %.1f%% not white\n", width, height, colours.size(),
              100.0 * static_cast<double>(ink) / static_cast<double>(sampled));
  if (colours.size() < 16 || ink * 20 < sampled)
    return fail_png(path, "the screenshot looks blank");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  if (what == "dom" && argc == 4) return check_dom(argv[2], std::atoi(argv[3]));
  if (what == "png" && argc == 3) return check_png(argv[2]);
  std::fprintf(stderr, "usage: report_check dom DOM.html N | report_check png SHOT.png\n");
  return 2;
}
