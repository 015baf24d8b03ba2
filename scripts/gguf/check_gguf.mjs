// check_gguf.mjs: load a GGUF file with real llama.cpp (the npm package node-llama-cpp, pinned 3.21.1,
// which ships prebuilt llama.cpp binaries) and decode greedily from given prompt token ids, on the CPU.
//
//   npm install --prefix DIR node-llama-cpp@3.21.1
//   NODE_LLAMA_CPP_DIR=DIR node scripts/gguf/check_gguf.mjs request.json
//
// request.json: {"model": "x.gguf", "prompt": "<|im_start|>...", "ids": [...prompt ids...], "n": 24}
// Prints one JSON line: {"tokenize": [...llama.cpp's ids of prompt...], "tokens": [...n greedy ids...],
// "eos": id}. pipeline's TestGGUFWithLlamaCpp runs it and compares with t2m.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const dir = process.env.NODE_LLAMA_CPP_DIR;
if (!dir) {
    console.error("set NODE_LLAMA_CPP_DIR to the folder where node-llama-cpp@3.21.1 is installed");
    process.exit(2);
}
const entry = path.join(dir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);

const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: req.model, gpuLayers: 0});
const tokenize = req.prompt ? Array.from(model.tokenize(req.prompt, true)) : [];
const context = await model.createContext({contextSize: Math.max(256, req.ids.length + req.n + 8), threads: 1});
const seq = context.getSequence();
const tokens = [];
// temperature 0: llama.cpp's greedy sampler (argmax); no repeat penalty.
for await (const t of seq.evaluate(req.ids, {temperature: 0})) {
    tokens.push(t);
    if (tokens.length >= req.n) break;
}
console.log(JSON.stringify({tokenize, tokens, eos: model.tokens.eos}));
await context.dispose();
await model.dispose();
await llama.dispose();
