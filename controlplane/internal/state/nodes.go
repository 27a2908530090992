package state

// RegisterNode records an agent (again, after a restart): ready, with its
// capabilities.
func (s *Store) RegisterNode(n Node) {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	if raw, err := txn.First(tableNodes, "id", n.Name); err == nil && raw != nil {
		n.RegisteredAt = raw.(*Node).RegisteredAt
	}
	n.Status = NodeReady
	mustInsert(txn, tableNodes, &n)
	txn.Commit()
}

// SetNodeStatus changes an agent's recorded state; it reports false for an
// unknown node.
func (s *Store) SetNodeStatus(name string, status NodeStatus, now int64) bool {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	raw, err := txn.First(tableNodes, "id", name)
	if err != nil || raw == nil {
		return false
	}
	n := *raw.(*Node)
	n.Status, n.UpdatedAt = status, now
	mustInsert(txn, tableNodes, &n)
	txn.Commit()
	return true
}

// Nodes returns every registered agent.
func (s *Store) Nodes() []Node {
	it, err := s.db.Load().Txn(false).Get(tableNodes, "id")
	if err != nil {
		return nil
	}
	var out []Node
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n := *raw.(*Node)
		n.Capabilities = append(n.Capabilities[:0:0], n.Capabilities...)
		out = append(out, n)
	}
	return out
}

// Node returns one agent.
func (s *Store) Node(name string) (Node, bool) {
	raw, err := s.db.Load().Txn(false).First(tableNodes, "id", name)
	if err != nil || raw == nil {
		return Node{}, false
	}
	return *raw.(*Node), true
}

// MetaClusterID names the cluster's id in the meta table: set once, by the
// first leader, so that a server holding another cluster's data is told
// apart when it asks to join.
const MetaClusterID = "cluster_id"

// SetMeta sets a cluster-wide value unless it is already set (so that
// concurrent leaders cannot overwrite each other's secret).
func (s *Store) SetMeta(key, value string) string {
	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	if raw, err := txn.First(tableMeta, "id", key); err == nil && raw != nil {
		return raw.(*Meta).Value
	}
	mustInsert(txn, tableMeta, &Meta{Key: key, Value: value})
	txn.Commit()
	return value
}

// Meta returns a cluster-wide value.
func (s *Store) Meta(key string) (string, bool) {
	raw, err := s.db.Load().Txn(false).First(tableMeta, "id", key)
	if err != nil || raw == nil {
		return "", false
	}
	return raw.(*Meta).Value, true
}
