package laneway

import "github.com/laneway/laneway/internal/lanes"

// topology is the domain's streams and subscriptions under the app's
// configuration: lanes, stream naming and consumer groups.
func (a *App) topology() (lanes.Topology, error) {
	d := a.dom
	groups, err := d.ConsumerGroups(a.cfg)
	if err != nil {
		return lanes.Topology{}, err
	}
	lc, err := a.lanes()
	if err != nil {
		return lanes.Topology{}, err
	}
	spec := lanes.Spec{Domain: d.name, Categories: d.AllCategories(), CommandCategories: d.CommandCategories()}
	for _, h := range d.handlers {
		spec.Readers = append(spec.Readers, lanes.Reader{Group: groups[h.name], Categories: d.Categories(h)})
	}
	return lanes.New(spec, lc), nil
}

// lanes is the app's lane configuration, streams named for its domain.
func (a *App) lanes() (lanes.Config, error) {
	return lanes.FromConfig(a.cfg, a.dom.name)
}
