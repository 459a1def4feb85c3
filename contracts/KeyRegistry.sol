// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title KeyRegistry
/// @notice Permissioned registry of QKD key commitments, pseudonym identities and
///         one-time-pad consumption for the Internet of Vehicles.
/// @dev The admin is the Trusted Authority (TA). Validators are roadside units,
///      vehicles are vehicles. Only an active, non-revoked member may open or use
///      key sessions. Every state change emits an event; every refusal is a
///      custom error carrying the offending values.
contract KeyRegistry {
    enum Role {
        None,
        Validator,
        Vehicle
    }

    enum SessionState {
        None,
        Committed,
        Agreed,
        Mismatch,
        Expired
    }

    struct Member {
        Role role;
        bool revoked;
    }

    struct Identity {
        address account;
        uint64 registeredAt;
        uint64 revokedAt; // 0 while valid
    }

    /// @dev Packed into three storage slots.
    struct Session {
        address initiator; // slot 0
        uint32 keyBits;
        uint64 expiresAt;
        address peer; // slot 1
        SessionState state;
        uint32 consumedBits;
        bytes32 keyHash; // slot 2: the initiator's commitment
    }

    struct Commitment {
        bytes32 sessionId;
        address peer;
        bytes32 keyHash;
        uint32 keyBits;
        uint64 ttl;
    }

    struct Confirmation {
        bytes32 sessionId;
        bytes32 keyHash;
    }

    uint64 public constant MAX_TTL = 30 days;

    address public admin;
    mapping(address => Member) private _members;
    mapping(bytes32 => Identity) private _identities;
    mapping(bytes32 => Session) private _sessions;

    // ---- events --------------------------------------------------------------
    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    event MemberAdded(address indexed account, Role role);
    event MemberRemoved(address indexed account, Role role);
    event IdentityRegistered(bytes32 indexed pseudonymId, address indexed account);
    event IdentityRevoked(bytes32 indexed pseudonymId, address indexed account, string reason);
    event KeyCommitted(
        bytes32 indexed sessionId,
        address indexed initiator,
        address indexed peer,
        bytes32 keyHash,
        uint32 keyBits,
        uint64 expiresAt
    );
    event KeyConfirmed(bytes32 indexed sessionId, address indexed peer, bytes32 keyHash, SessionState state);
    event MessageRecorded(
        bytes32 indexed sessionId,
        address indexed sender,
        bytes32 ciphertextHash,
        uint32 offset,
        uint32 bits
    );

    // ---- errors --------------------------------------------------------------
    error NotAdmin(address caller);
    error NotAuthorized(address caller);
    error ZeroAddress();
    error AlreadyMember(address account, Role role);
    error NotMember(address account);
    error AccountRevoked(address account);
    error IdentityExists(bytes32 pseudonymId);
    error UnknownIdentity(bytes32 pseudonymId);
    error IdentityAlreadyRevoked(bytes32 pseudonymId);
    error InvalidPeer(address peer);
    error InvalidKeyBits(uint32 keyBits);
    error InvalidTtl(uint64 ttl, uint64 maxTtl);
    error SessionExists(bytes32 sessionId);
    error UnknownSession(bytes32 sessionId);
    error NotSessionPeer(bytes32 sessionId, address caller);
    error NotSessionParty(bytes32 sessionId, address caller);
    error SessionNotPending(bytes32 sessionId, SessionState state);
    error SessionNotAgreed(bytes32 sessionId, SessionState state);
    error PadOffsetMismatch(bytes32 sessionId, uint32 expected, uint32 given);
    error PadOverrun(bytes32 sessionId, uint32 keyBits, uint64 end);
    error EmptyRecord(bytes32 sessionId);
    error EmptyBatch();

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier onlyWriter() {
        _requireWriter(msg.sender);
        _;
    }

    constructor() {
        admin = msg.sender;
        emit AdminTransferred(address(0), msg.sender);
    }

    // ---- roles ---------------------------------------------------------------

    function transferAdmin(address newAdmin) external onlyAdmin {
        if (newAdmin == address(0)) revert ZeroAddress();
        emit AdminTransferred(admin, newAdmin);
        admin = newAdmin;
    }

    function addValidator(address account) external onlyAdmin {
        _addMember(account, Role.Validator);
    }

    function addVehicle(address account) external onlyAdmin {
        _addMember(account, Role.Vehicle);
    }

    function removeMember(address account) external onlyAdmin {
        Role role = _members[account].role;
        if (role == Role.None) revert NotMember(account);
        _members[account].role = Role.None;
        emit MemberRemoved(account, role);
    }

    function roleOf(address account) external view returns (Role) {
        return _members[account].role;
    }

    function isAccountRevoked(address account) external view returns (bool) {
        return _members[account].revoked;
    }

    /// @notice True when `account` may send key-session transactions.
    function canWrite(address account) public view returns (bool) {
        Member storage m = _members[account];
        return m.role != Role.None && !m.revoked;
    }

    // ---- identities ----------------------------------------------------------

    function registerIdentity(bytes32 pseudonymId, address account) external onlyAdmin {
        Identity storage id = _identities[pseudonymId];
        if (id.account != address(0)) revert IdentityExists(pseudonymId);
        _requireWriter(account);
        id.account = account;
        id.registeredAt = uint64(block.timestamp);
        emit IdentityRegistered(pseudonymId, account);
    }

    /// @notice Revoke a pseudonym; its account loses write permission for good.
    function revokeIdentity(bytes32 pseudonymId, string calldata reason) external onlyAdmin {
        Identity storage id = _identities[pseudonymId];
        if (id.account == address(0)) revert UnknownIdentity(pseudonymId);
        if (id.revokedAt != 0) revert IdentityAlreadyRevoked(pseudonymId);
        id.revokedAt = uint64(block.timestamp);
        _members[id.account].revoked = true;
        emit IdentityRevoked(pseudonymId, id.account, reason);
    }

    function isRevoked(bytes32 pseudonymId) external view returns (bool) {
        return _identities[pseudonymId].revokedAt != 0;
    }

    function getIdentity(bytes32 pseudonymId) external view returns (Identity memory) {
        return _identities[pseudonymId];
    }

    // ---- key sessions --------------------------------------------------------

    function commitKey(bytes32 sessionId, address peer, bytes32 keyHash, uint32 keyBits, uint64 ttl)
        external
        onlyWriter
    {
        _commit(sessionId, peer, keyHash, keyBits, ttl);
    }

    function commitKeys(Commitment[] calldata commitments) external onlyWriter {
        uint256 n = commitments.length;
        if (n == 0) revert EmptyBatch();
        for (uint256 i = 0; i < n; ++i) {
            Commitment calldata c = commitments[i];
            _commit(c.sessionId, c.peer, c.keyHash, c.keyBits, c.ttl);
        }
    }

    function confirmKey(bytes32 sessionId, bytes32 keyHash) external onlyWriter {
        _confirm(sessionId, keyHash);
    }

    function confirmKeys(Confirmation[] calldata confirmations) external onlyWriter {
        uint256 n = confirmations.length;
        if (n == 0) revert EmptyBatch();
        for (uint256 i = 0; i < n; ++i) {
            _confirm(confirmations[i].sessionId, confirmations[i].keyHash);
        }
    }

    /// @notice Record `bits` pad bits consumed at `offset` by a message whose
    ///         ciphertext hashes to `ciphertextHash`. Offsets only move forward.
    function recordMessage(bytes32 sessionId, bytes32 ciphertextHash, uint32 offset, uint32 bits)
        external
        onlyWriter
    {
        Session storage s = _sessions[sessionId];
        SessionState state = _stateOf(s);
        if (state == SessionState.None) revert UnknownSession(sessionId);
        if (msg.sender != s.initiator && msg.sender != s.peer) revert NotSessionParty(sessionId, msg.sender);
        if (state != SessionState.Agreed) revert SessionNotAgreed(sessionId, state);
        if (bits == 0) revert EmptyRecord(sessionId);
        if (offset != s.consumedBits) revert PadOffsetMismatch(sessionId, s.consumedBits, offset);
        uint64 end = uint64(offset) + bits;
        if (end > s.keyBits) revert PadOverrun(sessionId, s.keyBits, end);
        s.consumedBits = uint32(end);
        emit MessageRecorded(sessionId, msg.sender, ciphertextHash, offset, bits);
    }

    function getSession(bytes32 sessionId) external view returns (Session memory s) {
        s = _sessions[sessionId];
        s.state = _stateOf(_sessions[sessionId]);
    }

    function sessionState(bytes32 sessionId) external view returns (SessionState) {
        return _stateOf(_sessions[sessionId]);
    }

    function consumedBits(bytes32 sessionId) external view returns (uint32) {
        return _sessions[sessionId].consumedBits;
    }

    // ---- internals -----------------------------------------------------------

    function _requireWriter(address account) private view {
        Member storage m = _members[account];
        if (m.revoked) revert AccountRevoked(account);
        if (m.role == Role.None) revert NotAuthorized(account);
    }

    function _addMember(address account, Role role) private {
        if (account == address(0)) revert ZeroAddress();
        Member storage m = _members[account];
        if (m.revoked) revert AccountRevoked(account);
        if (m.role != Role.None) revert AlreadyMember(account, m.role);
        m.role = role;
        emit MemberAdded(account, role);
    }

    /// @dev A session past its expiry reads as Expired whatever it was.
    function _stateOf(Session storage s) private view returns (SessionState) {
        SessionState state = s.state;
        if (state != SessionState.None && block.timestamp >= s.expiresAt) return SessionState.Expired;
        return state;
    }

    function _commit(bytes32 sessionId, address peer, bytes32 keyHash, uint32 keyBits, uint64 ttl) private {
        Session storage s = _sessions[sessionId];
        if (s.state != SessionState.None) revert SessionExists(sessionId);
        if (peer == msg.sender || !canWrite(peer)) revert InvalidPeer(peer);
        if (keyBits == 0) revert InvalidKeyBits(keyBits);
        if (ttl == 0 || ttl > MAX_TTL) revert InvalidTtl(ttl, MAX_TTL);
        uint64 expiresAt = uint64(block.timestamp) + ttl;
        s.initiator = msg.sender;
        s.keyBits = keyBits;
        s.expiresAt = expiresAt;
        s.peer = peer;
        s.state = SessionState.Committed;
        s.keyHash = keyHash;
        emit KeyCommitted(sessionId, msg.sender, peer, keyHash, keyBits, expiresAt);
    }

    function _confirm(bytes32 sessionId, bytes32 keyHash) private {
        Session storage s = _sessions[sessionId];
        SessionState state = _stateOf(s);
        if (state == SessionState.None) revert UnknownSession(sessionId);
        if (msg.sender != s.peer) revert NotSessionPeer(sessionId, msg.sender);
        if (state != SessionState.Committed) revert SessionNotPending(sessionId, state);
        SessionState outcome = keyHash == s.keyHash ? SessionState.Agreed : SessionState.Mismatch;
        s.state = outcome;
        emit KeyConfirmed(sessionId, msg.sender, keyHash, outcome);
    }
}
