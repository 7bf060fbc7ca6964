package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestWorkflowRunsTaskfileTasks checks that every `task NAME` the GitHub
// workflow runs is a task of Taskfile.yml, and that every task says what
// it does: the workflow and .ci/run are meant to run the same tasks, and a
// misspelt one would only fail on GitHub. (actionlint checks the rest of
// the workflow.)
func TestWorkflowRunsTaskfileTasks(t *testing.T) {
	var taskfile struct {
		Version string `json:"version"`
		Tasks   map[string]struct {
			Desc string `json:"desc"`
		} `json:"tasks"`
	}
	data, err := os.ReadFile("../Taskfile.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &taskfile); err != nil {
		t.Fatalf("Taskfile.yml: %v", err)
	}
	for name, task := range taskfile.Tasks {
		if strings.TrimSpace(task.Desc) == "" {
			t.Errorf("Taskfile.yml: task %s has no desc", name)
		}
	}

	var workflow struct {
		Jobs map[string]struct {
			Steps []struct {
				Run string `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	data, err = os.ReadFile("../.github/workflows/ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &workflow); err != nil {
		t.Fatalf("ci.yml: %v", err)
	}
	call := regexp.MustCompile(`(?m)^\s*task ([a-z][a-z:-]*)`)
	var run []string
	for job, j := range workflow.Jobs {
		for _, s := range j.Steps {
			for _, m := range call.FindAllStringSubmatch(s.Run, -1) {
				if _, ok := taskfile.Tasks[m[1]]; !ok {
					t.Errorf("ci.yml job %s runs task %q, which Taskfile.yml does not have", job, m[1])
				}
				run = append(run, m[1])
			}
		}
	}
	// The tasks .ci/run's steps correspond to.
	for _, want := range []string{"lint", "lint:ci", "deploy:check", "image:check", "test"} {
		if !slices.Contains(run, want) {
			t.Errorf("ci.yml never runs task %s, which .ci/run runs", want)
		}
	}
}
