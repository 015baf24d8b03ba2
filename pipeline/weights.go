package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/t2m/t2m/model"
)

// LoadWeights resolves --model-dir / --model: a directory, or a registered name (built-in weights from a
// seed, or a pointer to where the real weights come from).
func LoadWeights(dir, name string, seed int64, opt model.LoadOptions) (*model.Weights, string, error) {
	switch {
	case dir != "" && name != "":
		return nil, "", fmt.Errorf("give --model-dir or --model, not both")
	case dir == "" && name == "":
		return nil, "", fmt.Errorf("give --model-dir DIR or --model NAME (%s)", strings.Join(model.RegisteredNames(), ", "))
	case dir == "":
		if st, err := os.Stat(filepath.Join(name, "config.json")); err == nil && !st.IsDir() {
			dir = name // --model accepts a directory too, as in the training commands
			break
		}
		reg, err := model.Lookup(name)
		if err != nil {
			return nil, "", err
		}
		if reg.HFRepo != "" {
			return nil, "", fmt.Errorf("model %s has no built-in weights: download %s and pass its directory with --model-dir", name, reg.HFRepo)
		}
		if seed == 0 {
			seed = reg.Seed
		}
		w, err := model.RandomWeights(reg.Config, seed, opt)
		return w, name, err
	}
	w, err := model.LoadDir(dir, opt)
	return w, dir, err
}
