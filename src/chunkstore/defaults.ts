/** Average chunk size: chosen by measurement on the linux corpus (docs/performance.md, "Chunk size"). */
export const DEFAULT_AVG_CHUNK = 16 * 1024;
