/** Average chunk size: chosen by measurement on the linux corpus (README, "Chunk size"). */
export const DEFAULT_AVG_CHUNK = 16 * 1024;
