package eval

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ProvenanceSection renders how each run's reports (and its training record) were made, for the end of
// comparison.md: per run a heading and one item per report with the command line, the t2m version, the
// model, adapter, tokenizer and data (with the first 12 hex digits of their sha256), the settings, the
// timings and the GPU. Reports without provenance say so. "" without rows.
func ProvenanceSection(rows []ComparisonRow) string {
	if len(rows) == 0 {
		return ""
	}
	lines := []string{"## Provenance", ""}
	for _, s := range summarize(rows) {
		lines = append(lines, "### "+MarkdownText(s.name), "")
		if t := s.training; t != nil && t.Provenance != nil {
			lines = append(lines, "- "+MarkdownText("training ("+filepath.Base(t.Path)+")")+": "+provenanceLine(t.Provenance))
		}
		for _, r := range rows {
			if r.Run != s.name {
				continue
			}
			line := "- " + MarkdownText(r.Split) + ": "
			if r.Report.Provenance == nil {
				line += "no provenance recorded (a report written before t2m recorded it, or the original's)"
			} else {
				line += provenanceLine(r.Report.Provenance)
			}
			lines = append(lines, line)
		}
		lines = append(lines, "")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// provenanceLine is one report's provenance as markdown on one line.
func provenanceLine(p *Provenance) string {
	parts := []string{MarkdownCode(ShellJoin(p.Command)), "t2m " + MarkdownText(p.T2MVersion)}
	if m := p.Model; m != nil {
		if m.Registered {
			parts = append(parts, "model "+MarkdownText(m.Name)+" (built-in)")
		} else {
			parts = append(parts, fmt.Sprintf("model %s (config.json sha256 %s)", MarkdownCode(m.Path), short(m.ConfigSHA256)))
		}
	}
	if a := p.Adapter; a != nil {
		parts = append(parts, fmt.Sprintf("adapter %s (adapter_model.safetensors sha256 %s)", MarkdownCode(a.Path), short(a.AdapterModelSHA256)))
	}
	if t := p.Tokenizer; t != nil {
		if t.BuiltIn != "" {
			parts = append(parts, "tokenizer: built-in "+MarkdownText(t.BuiltIn))
		} else {
			parts = append(parts, fmt.Sprintf("tokenizer %s (sha256 %s)", MarkdownCode(t.Path), short(t.SHA256)))
		}
	}
	for _, d := range p.Data {
		parts = append(parts, fmt.Sprintf("data %s (sha256 %s)", MarkdownCode(d.Path), short(d.SHA256)))
	}
	if d := p.Predictions; d != nil {
		parts = append(parts, fmt.Sprintf("predictions %s (sha256 %s)", MarkdownCode(d.Path), short(d.SHA256)))
	}
	parts = append(parts, MarkdownText(settingsText(p.Settings)), MarkdownText(timingsText(p.Timings)))
	if p.GPU != "" {
		parts = append(parts, "GPU "+MarkdownText(p.GPU))
	}
	return strings.Join(parts, " · ")
}

// settingsText lists the settings a run had.
func settingsText(s Settings) string {
	var f []string
	add := func(name string, v any, ok bool) {
		if ok {
			f = append(f, fmt.Sprintf("%s %v", name, v))
		}
	}
	add("device", s.Device, s.Device != "")
	add("quantization", s.Quantization, s.Quantization != "")
	add("max-len", s.MaxLen, s.MaxLen != 0)
	add("max-new-tokens", s.MaxNewTokens, s.MaxNewTokens != 0)
	limit := "all"
	if s.Limit > 0 {
		limit = fmt.Sprint(s.Limit)
	}
	add("limit", limit, true)
	add("generation batch", s.GenerationBatch, s.GenerationBatch != 0)
	add("decoding", s.Decoding, s.Decoding != "")
	if s.Seed != nil {
		add("seed", *s.Seed, true)
	}
	add("gold", "yes", s.Gold)
	add("held-out collections", strings.Join(s.HeldOutCollections, ","), len(s.HeldOutCollections) > 0)
	return strings.Join(f, ", ")
}

// timingsText lists a run's timings in seconds.
func timingsText(t Timings) string {
	var f []string
	for _, x := range []struct {
		name string
		v    float64
	}{{"load", t.LoadSeconds}, {"generation", t.GenerationSeconds}, {"scoring", t.ScoringSeconds},
		{"training", t.TrainingSeconds}, {"wall", t.WallSeconds}} {
		if x.v != 0 || x.name == "wall" {
			f = append(f, fmt.Sprintf("%s %.3g s", x.name, x.v))
		}
	}
	return strings.Join(f, ", ")
}

// short is the first 12 hex digits of a sha256 ("?" when unknown).
func short(sha string) string {
	if sha == "" {
		return "?"
	}
	return sha[:min(12, len(sha))]
}

// ShellJoin renders a command line as a POSIX shell would read it back: arguments with characters
// other than letters, digits and -_./=:,+@% are single-quoted.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		safe := a != ""
		for _, r := range a {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
				safe = false
				break
			}
		}
		if safe {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// MarkdownText escapes markdown's inline punctuation and turns line breaks into spaces, so text taken from
// files or command lines reads literally.
func MarkdownText(s string) string {
	var b strings.Builder
	for _, r := range strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s) {
		if strings.ContainsRune("\\`*_[]<>|#!~&", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// MarkdownCode is s as an inline code span: fenced by one more backtick than the longest run inside it (and
// padded when s starts or ends with one), line breaks as spaces.
func MarkdownCode(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || s == "" {
		s = " " + s + " "
	}
	return fence + s + fence
}
