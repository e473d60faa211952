#include "moe/data/idx.h"

#include <new>

#include "data/file_bytes.h"

namespace moe {

namespace {

constexpr uint8_t kUnsignedByte = 0x08;
constexpr int kMaxIdxRank = 4;

const char* type_name(uint8_t code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return nullptr;
  }
}

uint32_t read_be32(const unsigned char* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

Result<IdxArray> parse_idx(std::string_view bytes, const std::string& source) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const uint64_t size = bytes.size();
  if (size < 4)
    return Status::error("{}: truncated: {} bytes, an IDX header needs at least 4", source, size);
  if (p[0] != 0 || p[1] != 0)
    return Status::error(
        "{}: bad magic number 0x{:08x} (an IDX file starts with two zero bytes, "
        "a type code and a rank)",
        source, read_be32(p));
  const uint8_t code = p[2];
  if (type_name(code) == nullptr)
    return Status::error("{}: unknown IDX type code 0x{:02x} in the magic number", source, code);
  if (code != kUnsignedByte)
    return Status::error(
        "{}: IDX type code 0x{:02x} ({}) is not supported, only 0x08 (unsigned "
        "byte)",
        source, code, type_name(code));
  const int rank = p[3];
  if (rank < 1 || rank > kMaxIdxRank)
    return Status::error("{}: IDX rank {} is outside 1..{}", source, rank, kMaxIdxRank);
  const uint64_t header = 4 + 4 * static_cast<uint64_t>(rank);
  if (size < header)
    return Status::error("{}: truncated header: rank {} needs {} bytes, the file has {}", source,
                         rank, header, size);
  IdxArray a;
  uint64_t count = 1;
  bool overflow = false;
  for (int i = 0; i < rank; ++i) {
    const uint32_t d = read_be32(p + 4 + 4 * i);
    a.dims.push_back(d);
    overflow = overflow || __builtin_mul_overflow(count, uint64_t{d}, &count);
  }
  if (overflow || count > static_cast<uint64_t>(INT64_MAX))
    return Status::error("{}: dimensions {} hold more elements than 64 bits count", source,
                         dims_str(a.dims));
  const uint64_t data_bytes = size - header;
  if (data_bytes < count)
    return Status::error(
        "{}: truncated: dimensions {} need {} data bytes after the {}-byte "
        "header, the file has {}",
        source, dims_str(a.dims), count, header, data_bytes);
  if (data_bytes > count)
    return Status::error(
        "{}: {} unexpected byte{} after the data (dimensions {} end at byte "
        "offset {})",
        source, data_bytes - count, data_bytes - count == 1 ? "" : "s", dims_str(a.dims),
        header + count);
  try {
    data_detail::reserve_huge(a.data, count);
    a.data.assign(p + header, p + size);
  } catch (const std::bad_alloc&) {
    return Status::error("{}: cannot allocate {} for the data", source, human_bytes(count));
  }
  return a;
}

Result<IdxArray> read_idx(const std::string& path, const IdxLimits& limits) {
  MOE_ASSIGN_OR_RETURN(std::string bytes, data_detail::read_data_file(path, limits.max_file_bytes));
  return parse_idx(bytes, path);
}

Status write_idx(const std::string& path, const IdxArray& a, bool gzip) {
  MOE_CHECK(!a.dims.empty() && a.dims.size() <= static_cast<size_t>(kMaxIdxRank),
            "write_idx: rank {}", a.dims.size());
  uint64_t count = 1;
  std::string bytes = {0, 0, static_cast<char>(kUnsignedByte), static_cast<char>(a.dims.size())};
  for (int64_t d : a.dims) {
    MOE_CHECK(d >= 0 && d <= int64_t{UINT32_MAX}, "write_idx: dimension {}", d);
    const auto u = static_cast<uint32_t>(d);
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<char>((u >> s) & 0xFF));
    count *= static_cast<uint64_t>(d);
  }
  MOE_CHECK(count == a.data.size(), "write_idx: dimensions hold {} elements, data has {}", count,
            a.data.size());
  bytes.append(reinterpret_cast<const char*>(a.data.data()), a.data.size());
  if (!gzip) return data_detail::write_file_bytes(path, bytes);
  MOE_ASSIGN_OR_RETURN(std::string packed, data_detail::gzip(bytes));
  return data_detail::write_file_bytes(path, packed);
}

LabelSpec integer_label_spec(int64_t n_classes, const std::string& column) {
  MOE_CHECK(n_classes >= 1, "integer_label_spec({})", n_classes);
  const size_t width = std::to_string(n_classes - 1).size();
  LabelSpec s;
  s.task = TaskKind::kClassification;
  s.columns = {column};
  for (int64_t i = 0; i < n_classes; ++i) {
    std::string name = std::to_string(i);
    s.class_names.push_back(std::string(width - name.size(), '0') + name);
  }
  return s;
}

Result<Dataset> load_idx_images(const std::string& images_path, const std::string& labels_path,
                                const IdxImageOptions& options) {
  if (options.n_classes < 2 || options.n_classes > 256)
    return Status::error("IDX images: n_classes must be in [2, 256], not {}", options.n_classes);
  MOE_ASSIGN_OR_RETURN(IdxArray images, read_idx(images_path));
  if (images.dims.size() < 2)
    return Status::error("{}: images need rank 2 or more ([N, H, W]), the file has rank {}",
                         images_path, images.dims.size());
  const int64_t n = images.dims[0];
  if (n == 0) return Status::error("{}: no images", images_path);
  const int64_t d = static_cast<int64_t>(images.data.size()) / n;
  if (d == 0)
    return Status::error("{}: images of zero size {}", images_path, dims_str(images.dims));

  Dataset out;
  out.source = images_path;
  out.kind = FeatureKind::kDense;
  out.n_rows = n;
  out.n_features = d;
  out.task = TaskKind::kClassification;
  out.n_classes = options.n_classes;
  try {
    data_detail::reserve_huge(out.dense, images.data.size());
    out.dense.resize(images.data.size());
  } catch (const std::bad_alloc&) {
    return Status::error("{}: cannot allocate {} for the pixels", images_path,
                         human_bytes(images.data.size() * sizeof(float)));
  }
  for (size_t i = 0; i < images.data.size(); ++i)
    out.dense[i] = static_cast<float>(images.data[i]) * (1.0f / 255.0f);
  out.source_rows.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.source_rows[static_cast<size_t>(i)] = i;

  if (labels_path.empty()) return out;
  MOE_ASSIGN_OR_RETURN(IdxArray labels, read_idx(labels_path));
  if (labels.dims.size() != 1)
    return Status::error("{}: labels need rank 1 ([N]), the file has rank {}", labels_path,
                         labels.dims.size());
  if (labels.dims[0] != n)
    return Status::error("{}: {} labels, but {} holds {} images", labels_path, labels.dims[0],
                         images_path, n);
  out.labels.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t y = labels.data[static_cast<size_t>(i)];
    if (y >= options.n_classes)
      return Status::error("{}: label {} of record {} (byte offset {}) is outside [0, {})",
                           labels_path, y, i, 8 + i, options.n_classes);
    out.labels[static_cast<size_t>(i)] = y;
  }
  out.has_labels = true;
  return out;
}

}  // namespace moe
