// A small libtorch host that plays nn~'s part: it loads an exported TorchScript file,
// reads get_methods(), get_attributes() and METHOD_params, and streams a signal through
// one method buffer by buffer the way nn~'s backend does (Backend::perform):
//   * one float buffer of n samples per (channel, batch item), channel-major
//     (mc.nn~ sends batch > 1);
//   * the buffers are concatenated, reshaped to [in_dim, batch, n / in_ratio, in_ratio],
//     the last sample of each in_ratio group is kept, and the result is permuted to
//     [batch, in_dim, n / in_ratio];
//   * the method runs under c10::InferenceMode;
//   * the output is repeat_interleave'd by out_ratio, reshaped to [batch, out_dim, n]
//     and copied to one buffer per (batch item, channel);
//   * attributes are set outside InferenceMode through set_A (nn~'s set_attribute).
//
// usage: nn_host MODEL.ts METHOD N BATCH INPUT.f32 OUTPUT.f32 [RESET_AT_BUFFER]
//   INPUT.f32: raw float32 [batch][in_channels][samples] at audio rate
//   OUTPUT.f32: raw float32 [batch][out_channels][samples] at audio rate
//   RESET_AT_BUFFER: before this buffer, call set_reset(true) as `set reset 1` would.
// It prints what it read from the model on stdout ("methods: ...", "params: ...", "info: k=v"),
// and what a live set feels: "load_ms: W (cpu C)" (torch::jit::load), "get_methods_ms: W (cpu C)" (the
// call nn~ makes on its audio thread when it creates the object), "call_ms: ..." (each call), and
// "peak_rss_kb: ..." (the process's peak resident memory, VmHWM). Timings are printed, never judged.

#include <torch/script.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct MethodParams {
  int in_dim, in_ratio, out_dim, out_ratio;
};

std::vector<std::string> string_list(const c10::IValue &value) {
  std::vector<std::string> out;
  auto list = value.toList();
  for (size_t i = 0; i < list.size(); i++) out.push_back(list.get(i).toStringRef());
  return out;
}

double ms_since(std::chrono::steady_clock::time_point began) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
}

// CPU time of the process (all its threads) in ms: comparable between runs on a busy machine, where wall time is not
double cpu_ms() { return 1000.0 * static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// peak resident memory of this process in kB (Linux: VmHWM in /proc/self/status), -1 where unknown
long peak_rss_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// nn~'s Backend::perform, minus the threading and the Max/Pd plumbing.
bool perform(torch::jit::Module &model, const std::string &method, const MethodParams &p,
             std::vector<float *> &in_buffer, std::vector<float *> &out_buffer, int n_vec, int n_batches) {
  c10::InferenceMode guard;
  std::vector<at::Tensor> tensor_in;
  for (auto *buffer : in_buffer) tensor_in.push_back(torch::from_blob(buffer, {1, 1, n_vec}));
  auto x = torch::cat(tensor_in, 1);
  x = x.reshape({p.in_dim, n_batches, -1, p.in_ratio});
  x = x.select(-1, -1);
  x = x.permute({1, 0, 2});
  std::vector<torch::jit::IValue> inputs = {x};
  at::Tensor y;
  try {
    y = model.get_method(method)(inputs).toTensor();
    y = y.repeat_interleave(p.out_ratio).reshape({n_batches, p.out_dim, -1});
  } catch (const std::exception &e) {
    std::cerr << "method call failed: " << e.what() << std::endl;
    return false;
  }
  if (y.size(0) * y.size(1) != static_cast<int64_t>(out_buffer.size())) {
    std::cerr << "bad out_buffer size, expected " << y.size(0) * y.size(1) << " got " << out_buffer.size() << std::endl;
    return false;
  }
  if (y.size(2) != n_vec) {
    std::cerr << "model output size is not consistent, expected " << n_vec << " samples, got " << y.size(2)
              << std::endl;
    return false;
  }
  y = y.to(torch::kCPU).reshape({n_batches * p.out_dim, -1}).contiguous();
  const float *out_ptr = y.data_ptr<float>();
  for (size_t i = 0; i < out_buffer.size(); i++) std::memcpy(out_buffer[i], out_ptr + i * n_vec, n_vec * sizeof(float));
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 7) {
    std::cerr << "usage: nn_host MODEL.ts METHOD N BATCH INPUT.f32 OUTPUT.f32 [RESET_AT_BUFFER]" << std::endl;
    return 2;
  }
  const std::string path = argv[1], method = argv[2];
  const int n = std::stoi(argv[3]), batch = std::stoi(argv[4]);
  const std::string input_path = argv[5], output_path = argv[6];
  const int reset_at = argc > 7 ? std::stoi(argv[7]) : -1;

  torch::jit::Module model;
  auto began = std::chrono::steady_clock::now();
  double cpu_began = cpu_ms();
  try {
    model = torch::jit::load(path);
    model.eval();
    std::cout << "load_ms: " << ms_since(began) << " (cpu " << cpu_ms() - cpu_began << ")" << std::endl;
  } catch (const std::exception &e) {
    std::cerr << "cannot load " << path << ": " << e.what() << std::endl;
    return 1;
  }

  // what nn~ reads at load time
  began = std::chrono::steady_clock::now();
  cpu_began = cpu_ms();
  auto methods = string_list(model.get_method("get_methods")(std::vector<c10::IValue>{}));
  std::cout << "get_methods_ms: " << ms_since(began) << " (cpu " << cpu_ms() - cpu_began << ")" << std::endl;
  std::cout << "methods:";
  bool found = false;
  for (const auto &m : methods) {
    std::cout << " " << m;
    found = found || m == method;
  }
  std::cout << std::endl;
  if (!found) {
    std::cerr << "method " << method << " is not in get_methods()" << std::endl;
    return 1;
  }
  auto attributes = string_list(model.get_method("get_attributes")(std::vector<c10::IValue>{}));
  std::cout << "attributes:";
  for (const auto &a : attributes) {
    auto types = model.attr(a + "_params").toTensor();
    std::cout << " " << a << "(" << types.numel() << ")";
  }
  std::cout << std::endl;
  auto params_tensor = model.attr(method + "_params").toTensor();
  MethodParams p{};
  p.in_dim = params_tensor[0].item<int>();
  p.in_ratio = params_tensor[1].item<int>();
  p.out_dim = params_tensor[2].item<int>();
  p.out_ratio = params_tensor[3].item<int>();
  std::cout << "params: " << p.in_dim << " " << p.in_ratio << " " << p.out_dim << " " << p.out_ratio << std::endl;
  auto info = model.get_method("get_streamify_info")(std::vector<c10::IValue>{}).toGenericDict();
  for (const auto &item : info) std::cout << "info: " << item.key().toStringRef() << "=" << item.value().toStringRef() << std::endl;
  model.get_method("set_sample_rate")(std::vector<c10::IValue>{c10::IValue(static_cast<int64_t>(48000))});

  // the input signal
  std::ifstream in(input_path, std::ios::binary | std::ios::ate);
  if (!in) {
    std::cerr << "cannot read " << input_path << std::endl;
    return 1;
  }
  const auto bytes = static_cast<size_t>(in.tellg());
  in.seekg(0);
  const size_t per_sample = sizeof(float) * batch * p.in_dim;
  if (bytes % per_sample != 0) {
    std::cerr << "input size " << bytes << " is not a whole number of [" << batch << ", " << p.in_dim << "] samples"
              << std::endl;
    return 1;
  }
  const int total = static_cast<int>(bytes / per_sample);
  if (total % n != 0) {
    std::cerr << "input length " << total << " is not a whole number of buffers of " << n << std::endl;
    return 1;
  }
  std::vector<float> input(static_cast<size_t>(batch) * p.in_dim * total);
  in.read(reinterpret_cast<char *>(input.data()), static_cast<std::streamsize>(bytes));
  std::vector<float> output(static_cast<size_t>(batch) * p.out_dim * total);

  std::vector<std::vector<float>> in_scratch(p.in_dim * batch, std::vector<float>(n));
  std::vector<std::vector<float>> out_scratch(p.out_dim * batch, std::vector<float>(n));
  std::vector<float *> in_buffers, out_buffers;
  for (auto &buffer : in_scratch) in_buffers.push_back(buffer.data());
  for (auto &buffer : out_scratch) out_buffers.push_back(buffer.data());

  int calls = 0;
  std::vector<double> call_ms;
  for (int start = 0, k = 0; start < total; start += n, ++k) {
    if (k == reset_at) {
      auto result = model.get_method("set_reset")(std::vector<c10::IValue>{c10::IValue(true)}).toInt();
      if (result != 0) {
        std::cerr << "set_reset returned " << result << std::endl;
        return 1;
      }
    }
    // nn~'s input buffers: channel-major, one per (channel, batch item)
    for (int c = 0; c < p.in_dim; c++)
      for (int b = 0; b < batch; b++)
        std::memcpy(in_scratch[c * batch + b].data(), &input[(static_cast<size_t>(b) * p.in_dim + c) * total + start],
                    n * sizeof(float));
    began = std::chrono::steady_clock::now();
    if (!perform(model, method, p, in_buffers, out_buffers, n, batch)) return 1;
    call_ms.push_back(ms_since(began));
    // nn~'s output buffers: batch-major, one per (batch item, channel)
    for (int b = 0; b < batch; b++)
      for (int c = 0; c < p.out_dim; c++)
        std::memcpy(&output[(static_cast<size_t>(b) * p.out_dim + c) * total + start],
                    out_scratch[b * p.out_dim + c].data(), n * sizeof(float));
    calls++;
  }
  std::ofstream out(output_path, std::ios::binary);
  out.write(reinterpret_cast<const char *>(output.data()), static_cast<std::streamsize>(output.size() * sizeof(float)));
  std::cout << "calls: " << calls << std::endl;
  std::cout << "call_ms:";
  for (double ms : call_ms) std::cout << " " << ms;
  std::cout << std::endl;
  std::cout << "peak_rss_kb: " << peak_rss_kb() << std::endl;
  return out ? 0 : 1;
}
