// Opens cuBLAS with dlopen on the first load_cublas() (see cublas_loader.hpp).
#include "cublas_loader.hpp"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>

#include "api.hpp"

namespace fastlinreg {
namespace cuda {

namespace {

std::mutex g_mutex;
CublasApi g_api{};
bool g_loaded = false;
std::string g_path;

template <class F>
void bind(void *lib, const char *name, F &fn) {
  void *sym = dlsym(lib, name);
  if (!sym) throw std::runtime_error(std::string("cuBLAS has no symbol ") + name);
  fn = reinterpret_cast<F>(sym);
}

}  // namespace

const CublasApi *cublas_api() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_loaded ? &g_api : nullptr;
}

bool cublas_loaded() { return cublas_api() != nullptr; }

std::string load_cublas(const std::vector<std::string> &candidates) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_loaded) return g_path;
  std::vector<std::string> tries = candidates;
  tries.push_back("libcublas.so." + std::to_string(FASTLINREG_CUDA_MAJOR));
  std::string errors;
  for (const auto &path : tries) {
    void *lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *e = dlerror();
      errors += "\n  " + path + ": " + (e ? e : "not found");
      continue;
    }
    CublasApi api{};
    bind(lib, "cublasCreate_v2", api.create);
    bind(lib, "cublasDestroy_v2", api.destroy);
    bind(lib, "cublasSetStream_v2", api.set_stream);
    bind(lib, "cublasDsyrk_v2", api.dsyrk);
    const int status = api.create(&api.handle);
    if (status != 0) {
      errors += "\n  " + path + ": cublasCreate failed with status " + std::to_string(status);
      dlclose(lib);
      continue;
    }
    api.set_stream(api.handle, nullptr);  // the legacy default stream, as every kernel here
    g_api = api;                          // the library stays open for the life of the process
    g_loaded = true;
    g_path = path;
    return path;
  }
  throw std::runtime_error("cuBLAS could not be loaded:" + errors);
}

}  // namespace cuda
}  // namespace fastlinreg
