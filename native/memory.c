// Gives the C heap's free pages back to the system. A daemon that has just read or written
// gigabytes through the folder is left with its main malloc arena full of holes (freed chunk
// buffers, SQLite pages, cipher contexts): on the linux tree they held ~55 MB of its RSS that
// glibc keeps, since only the top of the heap is trimmed by itself.
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

napi_value TrimHeap(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value out;
  if (napi_get_boolean(env, released != 0, &out) != napi_ok) return NULL;
  return out;
}
