package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkEncodeDataset encodes the intent and the output of all 2,138 examples of the shared data set
// once per iteration, with a fresh tokenizer each time so the pre-token cache starts empty, as in a run.
// Report: ns/op is the time for the whole data set.
func BenchmarkEncodeDataset(b *testing.B) {
	var texts []string
	for _, split := range sharedSplits {
		intents, outputs := sharedExamples(b, split)
		texts = append(append(texts, intents...), outputs...)
	}
	base := qwen(b)
	bytes, ids := 0, 0
	for _, s := range texts {
		bytes += len(s)
		ids += len(base.Encode(s))
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tok := *base // shares the read-only tables
		tok.cache = newCache(cacheLimit)
		b.StartTimer()
		for _, s := range texts {
			tok.Encode(s)
		}
	}
	b.ReportMetric(float64(len(texts)), "texts/op")
	b.ReportMetric(float64(ids), "ids/op")
}

// BenchmarkEncodeDatasetWarm is the same with the cache already filled (later epochs, eval passes).
func BenchmarkEncodeDatasetWarm(b *testing.B) {
	var texts []string
	for _, split := range sharedSplits {
		intents, outputs := sharedExamples(b, split)
		texts = append(append(texts, intents...), outputs...)
	}
	tok := qwen(b)
	for _, s := range texts {
		tok.Encode(s)
	}
	b.ResetTimer()
	for b.Loop() {
		for _, s := range texts {
			tok.Encode(s)
		}
	}
}

// BenchmarkEncodePrompts encodes the full ChatML prompt and completion of all 2,138 shared examples (what
// training tokenizes), cold cache. ns/op is the time for the whole data set.
func BenchmarkEncodePrompts(b *testing.B) {
	var texts []string
	for _, split := range sharedSplits {
		raw, err := os.ReadFile(filepath.Join(sharedDataDir, split))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			texts = append(texts, renderChatML(b, []byte(line)))
		}
	}
	base := qwen(b)
	bytes := 0
	for _, s := range texts {
		bytes += len(s)
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tok := *base
		tok.cache = newCache(cacheLimit)
		b.StartTimer()
		for _, s := range texts {
			tok.Encode(s)
		}
	}
	b.ReportMetric(float64(len(texts)), "texts/op")
}
