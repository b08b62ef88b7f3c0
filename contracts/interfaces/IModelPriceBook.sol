// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IModelPriceBook
/// @notice Per-model prices of inference, set by governance. Prices are CRD base units (micro-dollars) per one
/// million tokens, separately for input (prompt) and output (completion) tokens.
interface IModelPriceBook {
    /// @notice A model was listed or its prices were changed.
    event ModelPriced(uint16 indexed modelId, string name, uint64 inputPricePerMillion, uint64 outputPricePerMillion);
    /// @notice A model was delisted: no new job may be opened for it; open jobs still settle at its last price.
    event ModelDelisted(uint16 indexed modelId);

    /// @notice The model id is not listed.
    error ModelPriceBookUnknownModel(uint16 modelId);
    /// @notice A listing must have a non-empty name and at least one non-zero price.
    error ModelPriceBookInvalidListing(uint16 modelId);

    /// @notice Lists `modelId` under `name`, or changes its prices. Only callable by governance.
    function setModelPrice(uint16 modelId, string calldata name, uint64 inputPricePerMillion, uint64 outputPricePerMillion)
        external;

    /// @notice Delists `modelId`. Only callable by governance.
    function delistModel(uint16 modelId) external;

    /// @notice The prices of `modelId` and whether new jobs may be opened for it.
    function modelPrice(uint16 modelId)
        external
        view
        returns (uint64 inputPricePerMillion, uint64 outputPricePerMillion, bool listed);

    /// @notice The charge, in CRD base units, for `inputTokens` and `outputTokens` of `modelId`, rounded up.
    function costOf(uint16 modelId, uint256 inputTokens, uint256 outputTokens) external view returns (uint256);
}
