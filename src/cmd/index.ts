/** Binaries: wiring only (warrend, warren). Each calls one main(). */
export {};
