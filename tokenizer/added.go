package tokenizer

import (
	"sort"
	"strings"
)

// addedToken is a token matched as a whole in the text before BPE (e.g. "<|im_end|>").
type addedToken struct {
	content string
	id      int
}

// addedMatcher finds added tokens in text, leftmost-longest, like the Aho-Corasick automaton of HF's
// AddedVocabulary (MatchKind::LeftmostLongest). Vocabularies have a few dozen added tokens, so it indexes
// them by first byte, longest first, rather than building an automaton.
type addedMatcher struct {
	byFirst map[byte][]addedToken // first byte -> tokens, longest first
	firsts  string                // the distinct first bytes, for strings.IndexAny-like scanning
}

func (m *addedMatcher) add(tok addedToken) {
	if tok.content == "" {
		return
	}
	if m.byFirst == nil {
		m.byFirst = make(map[byte][]addedToken)
	}
	first := tok.content[0]
	list := m.byFirst[first]
	for _, have := range list {
		if have.content == tok.content {
			return // the same text twice: the first keeps it, as in HF's added vocabulary
		}
	}
	if len(list) == 0 {
		m.firsts += string([]byte{first})
	}
	list = append(list, tok)
	sort.SliceStable(list, func(i, j int) bool { return len(list[i].content) > len(list[j].content) })
	m.byFirst[first] = list
}

// split calls emit for each stretch of text (addedID -1) and each added token (its id), in order. Empty
// stretches are not emitted.
func (m *addedMatcher) split(text string, emit func(piece string, addedID int)) {
	if len(m.byFirst) == 0 {
		if text != "" {
			emit(text, -1)
		}
		return
	}
	start := 0 // start of the pending stretch of plain text
	for i := 0; i < len(text); {
		j := indexAnyByte(text[i:], m.firsts)
		if j < 0 {
			break
		}
		i += j
		tok, ok := m.longestAt(text[i:])
		if !ok {
			i++
			continue
		}
		if i > start {
			emit(text[start:i], -1)
		}
		emit(tok.content, tok.id)
		i += len(tok.content)
		start = i
	}
	if start < len(text) {
		emit(text[start:], -1)
	}
}

// longestAt returns the longest added token that s starts with.
func (m *addedMatcher) longestAt(s string) (addedToken, bool) {
	for _, tok := range m.byFirst[s[0]] {
		if strings.HasPrefix(s, tok.content) {
			return tok, true
		}
	}
	return addedToken{}, false
}

// indexAnyByte returns the index of the first byte of s that is in set, or -1. Unlike strings.IndexAny it
// compares bytes, not runes, so it also works for first bytes of multi-byte characters.
func indexAnyByte(s, set string) int {
	if len(set) == 1 {
		return strings.IndexByte(s, set[0])
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) >= 0 {
			return i
		}
	}
	return -1
}
