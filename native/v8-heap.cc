// Shrinks V8's heap of the calling thread back after a burst. The daemon lets its young
// generation grow to V8's default (16 MiB semi-spaces) so a shipment's frames in flight die
// young instead of being promoted and marked; V8 then keeps the grown space for good (a full
// collection from `gc()` leaves it as it is). Only a memory-pressure notification makes V8
// collect to reduce memory: a compacting full collection that also shrinks the young
// generation to its first size. N-API has no call for it, so this file speaks V8's own API
// (the addon is built against the headers of the node that runs it).
#include <node_api.h>
#include <v8.h>

extern "C" napi_value ReduceV8Heap(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kCritical);
  return nullptr;
}
