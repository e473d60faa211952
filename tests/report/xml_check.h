// A strict well-formedness check for the report's SVG and HTML: tags balance, attribute values
// are double-quoted and free of '<', every '&' starts a character reference, and text holds no
// raw '<' or '>'. Stricter than HTML needs, which is the point: markup injected through a data
// string cannot pass it.
//
// Dims: none (text in, first problem out).
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace moe::testing {

// Empty when `text` is well-formed, else the first problem and its byte offset.
inline std::string xml_problem(std::string_view text) {
  static const std::vector<std::string_view> kVoid = {"meta", "br", "hr", "img", "link"};
  std::vector<std::string> open;
  auto reference_ok = [&](size_t at) {
    const size_t end = text.find(';', at);
    if (end == std::string_view::npos || end - at > 8) return false;
    const std::string_view name = text.substr(at + 1, end - at - 1);
    if (name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos" ||
        name == "plusmn")
      return true;
    if (name.size() < 2 || name[0] != '#') return false;
    for (size_t i = 1; i < name.size(); ++i)
      if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
    return true;
  };
  auto at = [](size_t i, const std::string& what) {
    return what + " at byte " + std::to_string(i);
  };
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '&') {
      if (!reference_ok(i)) return at(i, "bare '&'");
      ++i;
      continue;
    }
    if (c == '>') return at(i, "raw '>' in text");
    if (c != '<') {
      ++i;
      continue;
    }
    if (text.substr(i, 2) == "<!") {  // <!DOCTYPE html>
      const size_t end = text.find('>', i);
      if (end == std::string_view::npos) return at(i, "unterminated declaration");
      i = end + 1;
      continue;
    }
    const bool closing = i + 1 < text.size() && text[i + 1] == '/';
    size_t j = i + (closing ? 2 : 1);
    const size_t name_start = j;
    while (j < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '-' || text[j] == ':'))
      ++j;
    const std::string name(text.substr(name_start, j - name_start));
    if (name.empty()) return at(i, "raw '<' in text");
    if (closing) {
      if (j >= text.size() || text[j] != '>') return at(j, "bad closing tag");
      if (open.empty() || open.back() != name)
        return at(i, "closing </" + name + "> does not match <" +
                         (open.empty() ? std::string("nothing") : open.back()) + ">");
      open.pop_back();
      i = j + 1;
      continue;
    }
    // Attributes: name="value" pairs until '>' or '/>'.
    while (true) {
      while (j < text.size() && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      if (j >= text.size()) return at(i, "unterminated tag <" + name);
      if (text[j] == '>') {
        bool is_void = false;
        for (std::string_view v : kVoid) is_void = is_void || v == name;
        if (!is_void) open.push_back(name);
        ++j;
        break;
      }
      if (text.substr(j, 2) == "/>") {
        j += 2;
        break;
      }
      const size_t attr_start = j;
      while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) ||
                                 text[j] == '-' || text[j] == ':' || text[j] == '_'))
        ++j;
      if (j == attr_start) return at(j, "bad attribute in <" + name);
      if (j + 1 >= text.size() || text[j] != '=' || text[j + 1] != '"')
        return at(j, "attribute value not double-quoted in <" + name);
      j += 2;
      while (j < text.size() && text[j] != '"') {
        if (text[j] == '<') return at(j, "'<' in an attribute value");
        if (text[j] == '&' && !reference_ok(j)) return at(j, "bare '&' in an attribute value");
        ++j;
      }
      if (j >= text.size()) return at(attr_start, "unterminated attribute value");
      ++j;
    }
    // The bodies of <style> are CSS, not markup: skip to the closing tag.
    if (name == "style") {
      const size_t end = text.find("</style>", j);
      if (end == std::string_view::npos) return at(i, "unterminated <style>");
      j = end;
    }
    i = j;
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

// How many times `needle` occurs in `text`.
inline size_t count_of(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size()))
    ++n;
  return n;
}

}  // namespace moe::testing
