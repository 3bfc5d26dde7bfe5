package tree

// mergePlan is what merge learns of a JSON object's member names under
// one schema node: that the members are all allowed (members found no
// error), whether a name is module-qualified, and which member, if any,
// gives each child. A bulk Set's entries all have the same members in
// the same order, so the plan worked out for the first holds for the
// rest: a member name the decoder shares is the same *jsonName object
// after object, and comparing the names is all the next object costs
// instead of a schema lookup of each name and a search of the members
// for each child. A name the decoder did not share (escaped, past its
// bound) is its own object, and an object with one makes a new plan.
type mergePlan struct {
	// ok says the plan was made in this transaction (by a writer of
	// state, or config); a plan is kept for the next, dropped.
	ok, state bool
	names     []*jsonName
	qualified bool
	// member[i] is the index of the member that gives the i-th child of
	// the schema node (the last of that name, as jsonObject.get reads),
	// or -1.
	member []int
}

// plan returns the merge plan for obj under in: the transaction's last
// for in's schema node when obj has the same member names, else a new
// one, after members has checked them. Whether members finds an error
// depends only on the schema node, the names and the writer, so a plan
// stands for the check.
func (tx *Txn) plan(in *Inst, obj *jsonObject) (*mergePlan, error) {
	plans := &tx.t.plans
	if tx.part {
		plans = &tx.plans
	}
	p := (*plans)[in.s]
	if p != nil && p.ok && p.state == tx.state && p.fits(obj) {
		return p, nil
	}
	qualified, err := tx.members(in, obj)
	if err != nil {
		return nil, err
	}
	if p == nil {
		if *plans == nil {
			*plans = map[*Node]*mergePlan{}
		}
		p = &mergePlan{}
		(*plans)[in.s] = p
	}
	// Rewritten in place: objects of varying shapes under one node, and
	// the next transactions' objects, cost no allocation each once the
	// slices have grown.
	p.ok, p.state, p.qualified = true, tx.state, qualified
	p.names = p.names[:0]
	for _, m := range obj.m {
		p.names = append(p.names, m.nm)
	}
	p.member = p.member[:0]
	for _, ch := range in.s.Children {
		j := obj.index(ch.Name)
		if j < 0 && qualified {
			j = obj.indexQualified(ch)
		}
		p.member = append(p.member, j)
	}
	return p, nil
}

// drop ends the plan's transaction: it holds no names, and fits nothing
// until made again.
func (p *mergePlan) drop() {
	clear(p.names)
	p.names, p.ok = p.names[:0], false
}

// fits reports whether obj's member names are the plan's.
func (p *mergePlan) fits(obj *jsonObject) bool {
	if len(obj.m) != len(p.names) {
		return false
	}
	for i, m := range obj.m {
		if m.nm != p.names[i] {
			return false
		}
	}
	return true
}
